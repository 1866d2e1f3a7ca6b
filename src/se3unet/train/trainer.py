"""The training loop: epochs of random poses, validation, checkpoints, logs and curves.

Deterministic by construction: poses depend on (seed, epoch, index), the batch order on
(seed, epoch), and the model's initial weights on the seed. A run resumed from its last
checkpoint (saved at the end of every epoch) therefore ends with the same weights as one that
was never interrupted.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from .. import __version__
from ..data.dataset import LandmarkDataset, collate, to_device
from ..data.landmark_files import is_unnamed
from ..data.prepare import MANIFEST
from ..evaluate.metrics import precision_recall_f1
from ..inference import (Checkpoint, Decoding, InferenceState, Provenance, ResumeState, ScanSettings, build_model,
                         decode, landmark_errors_mm)
from ..model import UNetConfig, build_network
from .config import ExperimentConfig, LossSettings, flat_settings
from .distributed import Distributed, setup, teardown
from .finetune_init import freeze_backbone
from .losses import compute_loss, consistency_loss, offset_loss, positive_weights
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
    """Full batches only (training: every batch, and every rank's share, the same size)."""
    return [indices[i:i + size] for i in range(0, len(indices) - size + 1, size)] or [indices]


def all_batches(indices: List[int], size: int) -> List[List[int]]:
    """Every index, the last batch partial if need be (validation scores every scan)."""
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def epoch_order(count: int, seed: int, epoch: int, state: Distributed, batch_size: int) -> List[int]:
    """This rank's share of the epoch's shuffled scan order; every rank gets as many batches.

    Batches are dealt in turn: step i of rank r is batch i * world_size + r of the order, so P
    processes with batch B / P train on the scans, in the poses, that one process with batch B
    trains on at every step (the same run, the gradients averaged over the ranks)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()
    world, rank = state.world_size, state.rank
    steps = count // (world * batch_size)
    if steps == 0:  # fewer scans than one batch per rank: one short batch each
        share = count // world
        return order[rank * share:(rank + 1) * share]
    return [index for i in range(steps)
            for index in order[(i * world + rank) * batch_size:(i * world + rank + 1) * batch_size]]


def forward(model, batch: Dict, use_normals: bool):
    """(logits, offsets or None) of a batch."""
    return model(batch["points"], batch.get("hierarchy"), normals=batch["normals"] if use_normals else None,
                 with_offsets=True)


def total_loss(loss: LossSettings, logits: torch.Tensor, offsets: Optional[torch.Tensor], batch: Dict,
               pos_weight: Optional[torch.Tensor]) -> torch.Tensor:
    """The heatmap loss, plus the weighted offset loss when the head predicts offsets."""
    value = compute_loss(loss.name, logits, batch, pos_weight, loss.reduction, loss.focal_alpha, loss.focal_gamma)
    if offsets is not None:
        value = value + loss.offset_weight * offset_loss(batch["points"], offsets, batch["landmarks"],
                                                         loss.offset_radius, loss.reduction)
    return value


@torch.no_grad()
def validate(model: torch.nn.Module, dataset: Optional[LandmarkDataset], loss: LossSettings, batch_size: int,
             device: torch.device, pos_weight: Optional[torch.Tensor], limit: Optional[int] = None) -> Dict[str, float]:
    """Loss, landmark error and F1 at 0.5, averaged over every scan (the first ``limit``)."""
    if dataset is None:  # no validation scans (fine-tuning on a few): nothing to measure, last.pt is the result
        return {"val_loss": math.nan, "val_error_mm": math.nan, "val_f1": math.nan}
    was_training = model.training
    model.eval()
    decoding = Decoding.for_training(loss.name, model.config.head)
    losses, errors, f1 = [], [], []
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for chunk in all_batches(list(range(count)), batch_size):
        batch = to_device(collate([dataset[i] for i in chunk]), device)
        logits, offsets = forward(model, batch, model.config.normals)
        losses.append(float(total_loss(loss, logits, offsets, batch, pos_weight)) * len(chunk))
        heat, predicted = decode(logits, batch["points"], decoding, offsets)
        errors.append(landmark_errors_mm(predicted, batch["landmarks"], batch["scale"]).cpu())
        f1.append(float(precision_recall_f1(heat.cpu(), batch["labels"].cpu(), [0.5])["f1"][0]) * len(chunk))
    model.train(was_training)
    e = torch.cat(errors)
    return {"val_loss": sum(losses) / count, "val_error_mm": float(e[torch.isfinite(e)].mean()),
            "val_f1": sum(f1) / count}


def split_dataset(config: ExperimentConfig, split: str, model: torch.nn.Module, seed: int,
                  fixed_pose: bool = False, cache: Optional[str] = None) -> LandmarkDataset:
    d = config.data
    return LandmarkDataset(cache or d.cache, split, d.sigma, d.threshold, d.rotate, d.translation, d.realign,
                           hierarchy=model.hierarchy, seed=seed, fixed_pose=fixed_pose, num_points=d.points,
                           landmark_names=d.landmark_names)


def twin_dataset(config: ExperimentConfig, train_set: LandmarkDataset, model: torch.nn.Module) -> LandmarkDataset:
    """data.twin_cache's training split, refused unless its scans are the same faces in the same
    order as data.cache's (prepared with the same settings plus --surround-twin)."""
    d = config.data
    if not (Path(d.twin_cache) / MANIFEST).is_file():
        raise FileNotFoundError(f"data.twin_cache {d.twin_cache!r} is not a prepared cache (run `se3unet prepare`)")
    twin = split_dataset(config, "train", model, config.run.seed + 2, cache=d.twin_cache)  # poses of its own
    same = len(twin) == len(train_set) and all(
        np.array_equal(twin.data[key], train_set.data[key]) for key in ("subject", "expression"))
    if not same:
        raise ValueError(f"data.twin_cache {d.twin_cache}: its training scans are not data.cache's faces in "
                         f"the same order; prepare it with data.cache's settings plus --surround-twin")
    return twin


def twin_batch(run: Run, group: List[int]) -> Dict[str, object]:
    """The scans of ``group``, followed by their twins when the run trains with a twin cache."""
    items = [run.train_set[j] for j in group]
    if run.twin_set is not None:
        items += [run.twin_set[j] for j in group]
    return to_device(collate(items), run.state.device)


def training_loss(run: Run, batch: Dict[str, object]) -> torch.Tensor:
    """total_loss over the batch, plus loss.consistency x the distance between the landmarks read
    on its scans and on their twins."""
    loss_settings = run.config.loss
    with torch.autocast(run.state.device.type, dtype=torch.bfloat16,
                        enabled=run.config.optim.precision == "bfloat16"):
        logits, offsets = forward(run.network, batch, run.model_config.normals)
    logits, offsets = logits.float(), offsets.float() if offsets is not None else None  # the loss in float32
    loss = total_loss(loss_settings, logits, offsets, batch, run.pos_weight)
    if run.twin_set is not None:
        decoding = Decoding.for_training(loss_settings.name, run.model_config.head)
        landmarks = decode(logits, batch["points"], decoding, offsets)[1]
        loss = loss + loss_settings.consistency * consistency_loss(
            landmarks, batch, toward_twin=loss_settings.consistency_target == "twin")
    return loss


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


def truncate_log(path: Path, column: str, below: int) -> None:
    """On resume, drop the rows that the checkpoint does not contain: those whose ``column``
    (epoch or step) is ``below`` or more."""
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    at = rows[0].index(column)
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[at]) < below]
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


@dataclass
class Run:
    """Everything one training run holds, built by ``start_run``."""

    config: ExperimentConfig
    state: Distributed
    output: Path
    model_config: UNetConfig
    model: torch.nn.Module  # SE3Unet or the EdgeConvUnet baseline
    network: torch.nn.Module  # the model, wrapped for DDP when distributed
    train_set: LandmarkDataset
    val_set: Optional[LandmarkDataset]  # None: the cache has no validation scans
    pos_weight: Optional[torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    manifest: Dict[str, Any]
    twin_set: Optional[LandmarkDataset] = None  # data.twin_cache's training scans, index by index
    start_epoch: int = 0
    start_batch: int = 0  # resumed inside start_epoch: its batches already trained
    epoch_losses: List[float] = field(default_factory=list)  # ... and their losses
    step: int = 0
    best: float = math.inf
    history: List[Dict[str, float]] = field(default_factory=list)


def start_run(config: ExperimentConfig, resume: bool, state: Distributed) -> Run:
    """Datasets, model, optimizer and scheduler; resumed from ``last.pt`` when asked."""
    d, o = config.data, config.optim
    if d.cache is None or not (Path(d.cache) / MANIFEST).is_file():
        raise FileNotFoundError(f"data.cache {d.cache!r} is not a prepared cache (run `se3unet prepare`)")
    output = Path(config.run.output)
    if state.is_main:
        output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.run.seed)
    manifest = json.loads((Path(d.cache) / MANIFEST).read_text())
    model_config = config.model_config()
    names = list(d.landmark_names) if d.landmark_names else manifest.get("landmark_names")
    if "num_outputs" not in config.model and names:  # one output per landmark of the data, unless told
        model_config = model_config.replace(num_outputs=len(names))
    model = build_network(model_config).to(state.device)
    train_set = split_dataset(config, "train", model, config.run.seed)
    val_set = (split_dataset(config, "val", model, config.run.seed + 1, fixed_pose=True)
               if manifest.get("sizes", {}).get("val", 1) else None)
    if bool(d.twin_cache) != bool(config.loss.consistency):  # either alone trains nothing it promises
        raise ValueError("data.twin_cache and loss.consistency go together: set both (a twin cache and a weight "
                         "above 0) or neither")
    twin_set = twin_dataset(config, train_set, model) if d.twin_cache else None
    if train_set.num_landmarks != model_config.num_outputs:
        raise ValueError(f"the cache has {train_set.num_landmarks} landmarks but the model {model_config.num_outputs} "
                         f"outputs: set model.num_outputs={train_set.num_landmarks}")
    pos_weight = training_pos_weight(train_set, d.sigma, d.threshold).to(state.device) if config.loss.name == "bce" else None
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[o.optimizer]
    optimizer = optimizer_class(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=o.t0 or o.epochs, eta_min=o.eta_min)
    run = Run(config, state, output, model_config, model, model, train_set, val_set, pos_weight, optimizer, scheduler,
              manifest, twin_set)
    if config.run.init and not (resume and (output / LAST).is_file()):
        load_initial_weights(model, config.run.init, model_config, names, train_set, config.run.init_new_landmarks)
    if config.run.freeze == "backbone":
        freeze_backbone(model)
    if resume and (output / LAST).is_file():
        saved = Checkpoint.load(output / LAST, state.device)
        if saved.resume is None:
            raise ValueError(f"{output / LAST}: holds no training state to resume from")
        refuse_changed_settings(output / LAST, saved.resume.experiment, config.to_dict())
        model.load_state_dict(saved.inference.weights)
        optimizer.load_state_dict(saved.resume.optimizer)
        scheduler.load_state_dict(saved.resume.scheduler)
        r = saved.resume
        run.best, run.history, run.step = r.best_error_mm, list(r.history), r.step
        # Written inside an epoch: that epoch again, from the first batch not trained.
        run.start_epoch = r.epoch if r.batches_done else r.epoch + 1
        run.start_batch, run.epoch_losses = r.batches_done, list(r.epoch_losses)
        if state.is_main:
            truncate_log(output / "epochs.csv", "epoch", run.start_epoch)
            truncate_log(output / "steps.csv", "step", run.step + 1)
    run.network = DistributedDataParallel(model) if state.enabled else model
    return run


# Settings a resumed run may change: where and how fast it runs, not what it trains. data.cache
# too: a cache's name is a digest of its settings and its data folder's path, so the same data
# prepared on another machine or moved has another name (the checkpoint records the one trained on).
RESUMABLE_CHANGES = {"run.output", "run.device", "run.time_limit", "run.checkpoint_minutes", "run.val_scans",
                     "model.recompute", "data.cache"}


def refuse_changed_settings(path: Path, saved: Dict[str, Any], now: Dict[str, Any]) -> None:
    """--resume continues the same training: refused, naming each setting, when the run's
    settings differ from those its checkpoint was trained with (apart from RESUMABLE_CHANGES)."""
    before, after = flat_settings(saved), flat_settings(now)
    differing = sorted(k for k in set(before) & set(after)  # settings added since are taken as they are
                       if k not in RESUMABLE_CHANGES and before[k] != after[k])
    if differing:
        raise ValueError(f"{path}: --resume with other settings than the run's: "
                         + ", ".join(f"{k} ({before[k]!r} there, {after[k]!r} here)" for k in differing)
                         + "; train into a new run.output, or resume with the same settings")


def load_initial_weights(model: torch.nn.Module, source: str, model_config: UNetConfig,
                         names: Optional[List[str]], train_set: Optional[LandmarkDataset] = None,
                         new_landmarks: str = "fresh") -> None:
    """Fine-tuning: the weights of a checkpoint (``"pretrained"``: the shipped model), refused with
    the settings that differ when its model is not this run's. Landmarks the checkpoint lacks
    get outputs of their own (train/finetune_init.py; ``new_landmarks``: nearest or fresh, the
    nearest found on the first training scans)."""
    from ..pretrained import pretrained_path
    from .finetune_init import load_finetune_weights

    path = pretrained_path() if source == "pretrained" else Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"run.init: {path} is not a checkpoint file")
    saved = Checkpoint.load(path).inference
    outputs = {"num_outputs", "added_outputs", "recompute"}  # recompute: speed only
    wanted, theirs = model_config.to_dict(), UNetConfig.from_dict(saved.model_config).to_dict()
    differing = sorted(k for k in wanted if k not in outputs and wanted[k] != theirs[k])
    if differing:
        raise ValueError(f"run.init: {path} holds a model that differs from this run's in "
                         + ", ".join(f"{k} ({theirs[k]!r} there, {wanted[k]!r} here)" for k in differing))
    names = list(names or saved.landmark_names)
    if names == list(saved.landmark_names) and not model_config.added_outputs:
        model.load_state_dict(saved.weights)
        return
    if is_unnamed(names):
        raise ValueError(f"run.init: {path} predicts named landmarks ({', '.join(saved.landmark_names[:3])}, ...) "
                         f"but this cache's files name none (LM1, ...): name them, or give prepare --landmark-names")
    nearest = None
    new = [n for n in names if n not in saved.landmark_names]
    if new_landmarks == "nearest" and new and train_set is not None:
        nearest = dict(zip(new, _nearest_base_outputs(saved, train_set, [names.index(n) for n in new])))
    load_finetune_weights(model, saved.weights, saved.landmark_names, names, nearest)


@torch.no_grad()
def _nearest_base_outputs(saved, train_set: LandmarkDataset, columns: List[int], scans: int = 8) -> List[int]:
    """For the landmarks in ``columns`` of the training data, the checkpoint's output that lands
    nearest to them on average over the first training scans."""
    from .finetune_init import nearest_outputs

    base = build_model(saved)
    items = [train_set[i] for i in range(min(scans, len(train_set)))]
    batch = collate(items)
    logits, offsets = base(batch["points"], normals=batch["normals"] if base.config.normals else None,
                           with_offsets=True)
    _, predicted = decode(logits, batch["points"], saved.decoding, offsets)
    return nearest_outputs(predicted.numpy(), batch["landmarks"][:, columns].numpy())


def train_epoch(run: Run, epoch: int, started: float, step_log: Optional["CsvLog"], writer, tqdm,
                progress: bool) -> tuple:
    """One epoch of optimizer steps, from the batch a mid-epoch checkpoint left it at: (losses,
    batches done when the time limit stopped it inside the epoch, else 0). Every pose and batch
    is a function of (seed, epoch, index), so a resumed epoch ends as an uninterrupted one."""
    config, o, state = run.config, run.config.optim, run.state
    run.train_set.set_epoch(epoch)
    groups = batches(epoch_order(len(run.train_set), config.run.seed, epoch, state, o.batch_size), o.batch_size)
    first = run.start_batch if epoch == run.start_epoch else 0
    losses = list(run.epoch_losses) if first else []
    bar = tqdm(groups[first:], desc=f"epoch {epoch + 1}/{o.epochs}", disable=not (progress and state.is_main),
               leave=False, initial=first, total=len(groups))
    every = config.run.checkpoint_minutes * 60 if config.run.checkpoint_minutes is not None else None
    saved_at = time.perf_counter()
    run.optimizer.zero_grad(set_to_none=True)
    for i, group in enumerate(bar, start=first):
        loss = training_loss(run, twin_batch(run, group))
        (loss / o.accumulate).backward()
        losses.append(float(loss.detach()))
        done = i + 1
        if done % o.accumulate and done < len(groups):
            continue  # gradients still accumulating: no step, no stop, no checkpoint here
        optimizer_step(run, epoch, done / len(groups), losses[-1], step_log, writer)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if done == len(groups):
            break  # the epoch's end validates and checkpoints
        if time_is_up(run, started):
            bar.close()
            return losses, done
        if every is not None and state.any_rank(time.perf_counter() - saved_at > every):
            if state.is_main:
                make_checkpoint(run, epoch, done, losses).save(run.output / LAST)
            saved_at = time.perf_counter()
    bar.close()
    return losses, 0


def time_is_up(run: Run, started: float) -> bool:
    """run.time_limit passed, on any rank (then on every rank: ranks must stop together)."""
    limit = run.config.run.time_limit
    return bool(limit) and run.state.any_rank(time.perf_counter() - started > limit)


def optimizer_step(run: Run, epoch: int, fraction: float, loss: float, step_log: Optional["CsvLog"], writer) -> None:
    """Clip, step, log; ``fraction`` of the epoch done moves the warm-restart schedule."""
    o = run.config.optim
    if o.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), o.grad_clip)
    lr = run.optimizer.param_groups[0]["lr"]  # the rate this step used
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    if run.state.device.type == "cpu" and run.model_config.recompute:  # memory over speed
        release_freed_memory()
    run.scheduler.step(epoch + fraction)
    run.step += 1
    if run.state.is_main:
        step_log.write({"epoch": epoch, "step": run.step, "loss": loss, "lr": lr})
        if writer:
            writer.add_scalar("train/loss", loss, run.step)
            writer.add_scalar("train/lr", lr, run.step)


def make_checkpoint(run: Run, epoch: int, batches_done: int = 0, epoch_losses: Sequence[float] = ()) -> Checkpoint:
    """The typed checkpoint of the run now: what inference needs, and the state to resume
    (inside ``epoch`` when ``batches_done`` of its batches are trained)."""
    config, scan_config = run.config, run.manifest["config"]
    inference = InferenceState(
        model_config=run.model_config.to_dict(), weights=run.model.state_dict(),
        landmark_names=list(config.data.landmark_names or run.manifest.get("landmark_names")
                            or [str(i + 1) for i in range(run.model_config.num_outputs)]),
        scan=ScanSettings(samples=int(scan_config["samples"]), points=int(config.data.points or scan_config["points"]),
                          sigma=config.data.sigma, threshold=config.data.threshold, normals=run.model_config.normals),
        decoding=Decoding.for_training(config.loss.name, run.model_config.head),
        provenance=Provenance(command=" ".join(sys.argv), data_digest=Path(config.data.cache).name,
                              date=datetime.datetime.now().isoformat(timespec="seconds"), version=__version__,
                              training_data=scan_config),
    )
    resume = ResumeState(run.optimizer.state_dict(), run.scheduler.state_dict(), epoch, run.step, run.history,
                         run.best, config.to_dict(), batches_done, list(epoch_losses))
    return Checkpoint(inference, resume)


def _train(config: ExperimentConfig, resume: bool, progress: bool, state: Distributed, tqdm) -> Dict[str, object]:
    run = start_run(config, resume, state)
    output, o = run.output, config.optim
    writer = _tensorboard(output) if state.is_main else None
    epoch_log = step_log = None
    if state.is_main:
        (output / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        epoch_log = CsvLog(output / "epochs.csv", ["epoch", "step", "train_loss", "lr", "val_loss", "val_error_mm",
                                                  "val_f1", "seconds"], append=resume)
        step_log = CsvLog(output / "steps.csv", ["epoch", "step", "loss", "lr"], append=resume)

    started = time.perf_counter()
    stopped_early = False
    for epoch in range(run.start_epoch, o.epochs):
        epoch_start = time.perf_counter()
        losses, stopped_inside = train_epoch(run, epoch, started, step_log, writer, tqdm, progress)
        stopped_early = stopped_inside > 0
        metrics = validate(run.model, run.val_set, config.loss, o.batch_size, state.device, run.pos_weight,
                           config.run.val_scans) if state.is_main else {}
        row = {"epoch": epoch, "step": run.step, "train_loss": float(np.mean(losses)),
               "lr": run.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - epoch_start, **metrics}
        if not stopped_early:
            run.history.append(row)  # a stopped epoch's row is logged, and rewritten when it ends
        if state.is_main:
            end_epoch(run, epoch, row, epoch_log, writer, tqdm if progress else None, stopped_inside, losses)
        state.barrier()
        if not stopped_early and epoch + 1 < o.epochs:
            stopped_early = time_is_up(run, started)  # at the epoch's end
        if stopped_early:
            break

    summary = {"output": str(output), "epochs": len(run.history), "steps": run.step, "best_val_error_mm": run.best,
               "seconds": time.perf_counter() - started, "stopped_by_time_limit": stopped_early,
               "rank": state.rank, "world_size": state.world_size, "weights_digest": parameter_digest(run.model)}
    if state.is_main:
        from ..plots import training_curves

        training_curves(output / "steps.csv", output / "epochs.csv", output / "training.png")
        (output / "summary.json").write_text(json.dumps(summary, indent=2))
        if writer:
            writer.close()
    return summary


def end_epoch(run: Run, epoch: int, row: Dict[str, float], epoch_log: "CsvLog", writer, tqdm,
              batches_done: int = 0, losses: Sequence[float] = ()) -> None:
    """Logs the epoch and writes last.pt (and best.pt when validation improved); stopped inside
    the epoch by the time limit, last.pt holds where, so that --resume finishes the epoch."""
    epoch_log.write(row)
    if writer:
        for key in ("val_loss", "val_error_mm", "val_f1"):
            writer.add_scalar(f"val/{key[4:]}", row[key], epoch)
        writer.add_scalar("train/epoch_loss", row["train_loss"], epoch)
    improved = row["val_error_mm"] < run.best
    run.best = min(run.best, row["val_error_mm"])
    checkpoint = make_checkpoint(run, epoch, batches_done, losses if batches_done else ())
    if improved:
        checkpoint.save(run.output / BEST)
    checkpoint.save(run.output / LAST)
    if tqdm is not None:
        tqdm.write(f"epoch {epoch + 1}/{run.config.optim.epochs}: loss {row['train_loss']:.4f}, val loss "
                   f"{row['val_loss']:.4f}, val error {row['val_error_mm']:.2f} mm, val F1@0.5 {row['val_f1']:.3f}, "
                   f"{row['seconds']:.0f} s")
