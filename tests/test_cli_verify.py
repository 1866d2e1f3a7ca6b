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
