import json

import pytest

from se3unet.cli import main


def test_verify_prints_a_table_and_json_for_the_configuration_given(capsys):
    code = main(["verify", "--degrees", "0", "1", "--channels", "4", "--points", "24", "-k", "5",
                 "--heads", "2", "--batch", "1", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    report = json.loads(out[-1])
    assert set(report["layers"]) == {"ConvSE3", "GSE3Res(1x1)", "GSE3Res(att)", "LinearSE3",
                                     "AttentiveSelfInteraction", "GNormBias"}
    for name, r in report["layers"].items():
        assert r["float32"] < 1e-4 and r["float64"] < 1e-9 and r["seconds"] > 0, name
        assert any(line.startswith(name) for line in out), f"{name} missing from the table"


def test_verify_refuses_an_impossible_configuration(capsys):
    code = main(["verify", "--points", "4", "-k", "8"])
    assert code == 2
    assert "at least 9" in capsys.readouterr().err


def test_version_is_the_package_version(capsys):
    import se3unet

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"se3unet {se3unet.__version__}"


def test_verify_checks_active_nonlinearities_and_reports_the_spread(capsys):
    import torch

    from se3unet.verify import VerifyConfig, layer_zoo, randomise_biases

    zoo = layer_zoo(VerifyConfig(degrees=[0, 1], channels=4))
    norm = randomise_biases(zoo["GNormBias"], torch.Generator().manual_seed(0))
    assert all(float(b.detach().abs().min()) > 0 for b in norm.bias.values())  # not the identity any more
    code = main(["verify", "--degrees", "0", "1", "--channels", "4", "--points", "24", "-k", "5", "--batch", "1",
                 "--preset", "default", "--model-points", "256", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    model = report["model"]
    assert model["float64"] < 1e-9 and model["float32"] < 1e-4
    # Against the spread across points the same change is larger, but still far below it.
    assert model["float64"] < model["spread"]["float64"] < 1e-9
    assert model["float32"] < model["spread"]["float32"] < 1e-2
