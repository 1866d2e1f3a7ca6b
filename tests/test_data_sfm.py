"""The Surrey Face Model reader against FORMAT.md."""

import shutil

import numpy as np
import pytest

from se3unet.data.errors import DataError
from se3unet.data.sfm import SurreyFaceModel, read_blendshapes, read_landmark_mapping, read_shape_model, resolve_sfm_dir


def test_shape_model_matches_the_format_description(sfm_model):
    shape = sfm_model.shape
    assert shape.mean.shape == (3448, 3)
    assert shape.basis.shape == (3448 * 3, 63)
    assert shape.triangles.shape == (6736, 3)
    assert abs(shape.eigenvalues[0] - 56502) < 1
    assert np.allclose(shape.basis.T @ shape.basis, np.eye(63), atol=1e-5)  # orthonormal
    assert sorted(sfm_model.blendshapes) == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    largest = {n: np.abs(b).max() for n, b in sfm_model.blendshapes.items()}  # FORMAT.md: 5.3 .. 29 mm
    assert round(largest["anger"], 1) == 5.3 and round(largest["surprise"]) == 29
    assert max(largest, key=largest.get) == "surprise" and min(largest, key=largest.get) == "anger"


def test_landmarks_sit_on_their_vertices(sfm_model):
    assert len(sfm_model.landmark_numbers) == 50
    assert 1 not in sfm_model.landmark_numbers and 61 not in sfm_model.landmark_numbers
    rng = np.random.default_rng(3)
    vertices, _ = sfm_model.random_face(rng, expression_probability=1.0)
    landmarks = sfm_model.landmarks(vertices)
    number = sfm_model.landmark_numbers
    assert np.array_equal(landmarks[number.index(31)], vertices[114])  # nose tip, vertex 114
    mean_lm = sfm_model.landmarks(sfm_model.shape.mean)
    eye_corners = np.linalg.norm(mean_lm[number.index(37)] - mean_lm[number.index(46)])
    assert 80 < eye_corners < 105  # FORMAT.md: 92.3 +- 5.7 mm


def test_truncated_or_padded_model_files_are_refused_by_name(sfm_dir, tmp_path):
    data = (sfm_dir / "sfm_shape_3448.bin").read_bytes()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated.bin: truncated"):
        read_shape_model(truncated)
    padded = tmp_path / "padded.bin"
    padded.write_bytes(data + b"\0" * 8)
    with pytest.raises(DataError, match="padded.bin: 8 unexpected bytes"):
        read_shape_model(padded)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.bin"):
        read_blendshapes(empty, 3448)
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes((sfm_dir / "expression_blendshapes_3448.bin").read_bytes())
    with pytest.raises(DataError, match="wrong.bin"):
        read_shape_model(wrong)


def test_landmark_mapping_errors_name_the_line(tmp_path):
    bad = tmp_path / "map.txt"
    bad.write_text("[landmark_mappings]\n9 = 33\n10 = x\n")
    with pytest.raises(DataError, match="map.txt: line 3"):
        read_landmark_mapping(bad)


def test_missing_folder_or_files_are_named(tmp_path, monkeypatch, sfm_dir):
    monkeypatch.delenv("SE3UNET_SFM_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="SE3UNET_SFM_DIR"):
        resolve_sfm_dir(None)
    partial = tmp_path / "sfm"
    partial.mkdir()
    shutil.copy(sfm_dir / "ibug_to_sfm.txt", partial)
    with pytest.raises(FileNotFoundError, match="lacks sfm_shape_3448.bin, expression_blendshapes_3448.bin"):
        SurreyFaceModel(partial)
    monkeypatch.setenv("SE3UNET_SFM_DIR", str(sfm_dir))
    assert resolve_sfm_dir(None) == sfm_dir


def test_a_subjects_scans_share_its_identity(sfm_model):
    from se3unet.data.sources import SurreyFaceSource

    source = SurreyFaceSource(sfm_model, subjects=3, expressions=3, seed=5)
    neutral = source.load((1, 0)).surface.vertices
    for expression in (1, 2):
        moved = source.load((1, expression)).surface.vertices - neutral
        # The expression scan differs from the neutral one by one blendshape, scaled: same person.
        residuals = []
        for shape in sfm_model.blendshapes.values():
            weight = float((moved * shape).sum() / (shape * shape).sum())
            residuals.append(np.abs(moved - weight * shape).max())
        assert min(residuals) < 1e-6
    other = source.load((2, 0)).surface.vertices
    assert np.abs(other - neutral).max() > 1.0  # another subject is another person
