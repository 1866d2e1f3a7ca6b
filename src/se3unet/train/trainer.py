"""The training loop: epochs of random poses, validation, checkpoints, logs and curves.

Deterministic by construction: poses depend on (seed, epoch, index), the batch order on
(seed, epoch), and the model's initial weights on the seed. A run resumed from its last
checkpoint (saved at the end of every epoch) therefore ends with the same weights as one that
was never interrupted.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ..data.dataset import LandmarkDataset, collate, to_device
from ..data.prepare import MANIFEST
from ..data.reference import ReferenceFace
from ..evaluate.landmarks import landmark_errors_mm, landmarks_from_heatmaps
from ..evaluate.metrics import precision_recall_f1
from ..model import SE3Unet
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ExperimentConfig
from .distributed import Distributed, setup, teardown
from .losses import compute_loss, positive_weights, predicted_heatmaps
from .memory import release_freed_memory

LAST, BEST = "last.pt", "best.pt"


def parameter_digest(model: torch.nn.Module) -> str:
    """A short hash of every parameter's bytes: equal digests, equal weights."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def batches(indices: List[int], size: int) -> List[List[int]]:
    return [indices[i:i + size] for i in range(0, len(indices) - size + 1, size)] or [indices]


def epoch_order(count: int, seed: int, epoch: int, state: Distributed, batch_size: int) -> List[int]:
    """This rank's share of the epoch's shuffled scan order; every rank gets as many batches."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()
    per_rank = (count // state.world_size) // batch_size * batch_size or count // state.world_size
    return order[state.rank * per_rank:(state.rank + 1) * per_rank]


def forward(model, batch: Dict, use_normals: bool) -> torch.Tensor:
    return model(batch["points"], batch.get("hierarchy"), normals=batch["normals"] if use_normals else None)


@torch.no_grad()
def validate(model: SE3Unet, dataset: LandmarkDataset, loss_name: str, batch_size: int, device: torch.device,
             pos_weight: Optional[torch.Tensor], reduction: str, limit: Optional[int] = None) -> Dict[str, float]:
    was_training = model.training
    model.eval()
    losses, errors, f1 = [], [], []
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for chunk in batches(list(range(count)), batch_size) if count >= batch_size else [list(range(count))]:
        batch = to_device(collate([dataset[i] for i in chunk]), device)
        logits = forward(model, batch, model.config.normals)
        losses.append(float(compute_loss(loss_name, logits, batch, pos_weight, reduction)))
        heat = predicted_heatmaps(loss_name, logits)
        predicted = landmarks_from_heatmaps(batch["points"], heat)
        errors.append(landmark_errors_mm(predicted, batch["landmarks"], batch["scale"]).cpu())
        f1.append(float(precision_recall_f1(heat.cpu(), batch["labels"].cpu(), [0.5])["f1"][0]) * len(chunk))
    model.train(was_training)
    e = torch.cat(errors)
    return {"val_loss": float(np.mean(losses)), "val_error_mm": float(e[torch.isfinite(e)].mean()),
            "val_f1": sum(f1) / count}


def split_dataset(config: ExperimentConfig, split: str, model: SE3Unet, seed: int,
                  fixed_pose: bool = False) -> LandmarkDataset:
    d = config.data
    return LandmarkDataset(d.cache, split, d.sigma, d.threshold, d.rotate, d.translation, d.realign,
                           hierarchy=model.hierarchy, seed=seed, fixed_pose=fixed_pose)


def training_pos_weight(dataset: LandmarkDataset, sigma: float, threshold: float) -> torch.Tensor:
    """The report's pos_weight from the training labels (heatmaps do not depend on the pose)."""
    from ..data.preprocess import gaussian_heatmaps

    labels = np.stack([gaussian_heatmaps(p, l, sigma) > threshold
                       for p, l in zip(dataset.data["points"], dataset.data["landmarks"])])
    return positive_weights(torch.from_numpy(labels).float())


class CsvLog:
    def __init__(self, path: Path, fields: List[str], append: bool):
        self.path, self.fields = path, fields
        if not append or not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def write(self, row: Dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])


def truncate_log(path: Path, keep_epochs: int) -> None:
    """On resume, drop rows of epochs that the checkpoint does not contain."""
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < keep_epochs]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)


def _tensorboard(output: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time; CSV logs are always written
        return None
    return SummaryWriter(str(output / "tensorboard"))


def train(config: ExperimentConfig, resume: bool = False, progress: bool = True) -> Dict[str, object]:
    """Trains per ``config``; returns the final summary (also written to summary.json)."""
    from tqdm import tqdm

    state = setup(config.run.device)
    try:
        return _train(config, resume, progress, state, tqdm)
    finally:
        teardown(state)


def _train(config: ExperimentConfig, resume: bool, progress: bool, state: Distributed, tqdm) -> Dict[str, object]:
    d, o, run = config.data, config.optim, config.run
    if d.cache is None or not (Path(d.cache) / MANIFEST).is_file():
        raise FileNotFoundError(f"data.cache {d.cache!r} is not a prepared cache (run `se3unet prepare`)")
    output = Path(run.output)
    if state.is_main:
        output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(run.seed)
    model_config = config.model_config()
    model = SE3Unet(model_config).to(state.device)
    train_set = split_dataset(config, "train", model, run.seed)
    val_set = split_dataset(config, "val", model, run.seed + 1, fixed_pose=True)
    if train_set.num_landmarks != model_config.num_outputs:
        raise ValueError(f"the cache has {train_set.num_landmarks} landmarks but the model {model_config.num_outputs} "
                         f"outputs: set model.num_outputs={train_set.num_landmarks}")
    pos_weight = training_pos_weight(train_set, d.sigma, d.threshold).to(state.device) if config.loss.name == "bce" else None

    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(o.optimizer)
    if optimizer_class is None:
        raise ValueError(f"optim.optimizer must be adam or adamw, got {o.optimizer!r}")
    optimizer = optimizer_class(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=o.t0 or o.epochs, eta_min=o.eta_min)

    start_epoch, best, history, step = 0, math.inf, [], 0
    if resume and (output / LAST).is_file():
        saved = load_checkpoint(output / LAST, state.device)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        start_epoch, best, history, step = saved["epoch"] + 1, saved["best_error_mm"], saved["history"], saved["step"]
        if state.is_main:
            truncate_log(output / "epochs.csv", start_epoch)
            truncate_log(output / "steps.csv", start_epoch)
    network = DistributedDataParallel(model) if state.enabled else model

    reference = ReferenceFace.load(Path(d.cache) / "reference.npz")
    manifest = json.loads((Path(d.cache) / MANIFEST).read_text())
    writer = _tensorboard(output) if state.is_main else None
    epoch_log = step_log = None
    if state.is_main:
        (output / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        epoch_log = CsvLog(output / "epochs.csv", ["epoch", "step", "train_loss", "lr", "val_loss", "val_error_mm",
                                                  "val_f1", "seconds"], append=resume)
        step_log = CsvLog(output / "steps.csv", ["epoch", "step", "loss", "lr"], append=resume)

    started = time.perf_counter()
    stopped_early = False
    for epoch in range(start_epoch, o.epochs):
        train_set.set_epoch(epoch)
        order = epoch_order(len(train_set), run.seed, epoch, state, o.batch_size)
        groups = batches(order, o.batch_size)
        bar = tqdm(groups, desc=f"epoch {epoch + 1}/{o.epochs}", disable=not (progress and state.is_main), leave=False)
        losses, epoch_start = [], time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        for i, group in enumerate(bar):
            batch = to_device(collate([train_set[j] for j in group]), state.device)
            loss = compute_loss(config.loss.name, forward(network, batch, model_config.normals), batch, pos_weight,
                                config.loss.reduction, config.loss.focal_alpha, config.loss.focal_gamma)
            (loss / o.accumulate).backward()
            losses.append(float(loss.detach()))
            if (i + 1) % o.accumulate == 0 or i + 1 == len(groups):
                if o.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
                lr = optimizer.param_groups[0]["lr"]  # the rate this step used
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if state.device.type == "cpu" and model_config.recompute:  # memory over speed
                    release_freed_memory()
                scheduler.step(epoch + (i + 1) / len(groups))
                step += 1
                if state.is_main:
                    step_log.write({"epoch": epoch, "step": step, "loss": losses[-1], "lr": lr})
                    if writer:
                        writer.add_scalar("train/loss", losses[-1], step)
                        writer.add_scalar("train/lr", lr, step)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if run.time_limit and state.any_rank(time.perf_counter() - started > run.time_limit):
                stopped_early = True
                break
        bar.close()

        metrics = validate(model, val_set, config.loss.name, o.batch_size, state.device, pos_weight,
                           config.loss.reduction, run.val_scans) if state.is_main else {}
        row = {"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)), "lr": optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - epoch_start, **metrics}
        history.append(row)
        if state.is_main:
            epoch_log.write(row)
            if writer:
                for key in ("val_loss", "val_error_mm", "val_f1"):
                    writer.add_scalar(f"val/{key[4:]}", row[key], epoch)
                writer.add_scalar("train/epoch_loss", row["train_loss"], epoch)
            checkpoint = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch, "step": step, "history": history, "model_config": model_config.to_dict(),
                "experiment": config.to_dict(), "reference": reference.arrays(), "landmark_count": train_set.num_landmarks,
                "data_config": manifest["config"], "landmark_names": manifest.get("landmark_names"),
                "best_error_mm": min(best, row["val_error_mm"]),
            }
            if row["val_error_mm"] < best:
                best = row["val_error_mm"]
                save_checkpoint(checkpoint, output / BEST)
            save_checkpoint(checkpoint, output / LAST)
            if progress:
                tqdm.write(f"epoch {epoch + 1}/{o.epochs}: loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}, "
                           f"val error {row['val_error_mm']:.2f} mm, val F1@0.5 {row['val_f1']:.3f}, "
                           f"{row['seconds']:.0f} s")
        state.barrier()
        if stopped_early:
            break

    summary = {"output": str(output), "epochs": len(history), "steps": step, "best_val_error_mm": best,
               "seconds": time.perf_counter() - started, "stopped_by_time_limit": stopped_early,
               "rank": state.rank, "world_size": state.world_size, "weights_digest": parameter_digest(model)}
    if state.is_main:
        from ..evaluate.plots import training_curves

        training_curves(output / "steps.csv", output / "epochs.csv", output / "training.png")
        (output / "summary.json").write_text(json.dumps(summary, indent=2))
        if writer:
            writer.close()
    return summary
