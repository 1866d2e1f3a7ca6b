"""Readers of FaceScape, archive and folder layouts, on files the tests write themselves."""

import json

import numpy as np
import pytest
from helpers import sphere_mesh, write_obj

from se3unet.data.errors import DataError
from se3unet.data.io import read_landmarks, read_surface
from se3unet.data.prepare import PrepareConfig, prepare
from se3unet.data.sources import ArchiveSource, FaceScapeSource, FolderSource


@pytest.fixture
def facescape(tmp_path):
    """Two identities in FaceScape's TU layout, with a landmark index file."""
    vertices, faces = sphere_mesh()
    rng = np.random.default_rng(0)
    indices = rng.choice(len(vertices), 68, replace=False)
    np.savez(tmp_path / "landmark_indices.npz", v10=indices, v16=indices[::-1])
    root = tmp_path / "facescape"
    for identity in ("1", "2", "10"):
        for expression in ("neutral", "smile"):
            offset = rng.normal(size=3)
            write_obj(root / identity / "models_reg" / f"{identity}_{expression}.obj", vertices + offset, faces)
    return root, tmp_path / "landmark_indices.npz", indices, vertices


def test_facescape_reads_its_real_layout_and_landmark_vertices(facescape):
    root, index_file, indices, vertices = facescape
    source = FaceScapeSource(root, index_file, expressions=("neutral", "smile"), crop_radius=0)
    entries = source.entries()
    assert [(e.subject, e.expression) for e in entries][:3] == [("1", "neutral"), ("1", "smile"), ("2", "neutral")]
    assert entries[-1].subject == "10"  # natural order of identity folders
    scan = source.load(entries[0].key)
    assert scan.surface.vertices.shape == vertices.shape
    assert np.allclose(scan.landmarks, scan.surface.vertices[indices])


def test_facescape_crop_keeps_the_region_around_the_nose_tip(facescape):
    root, index_file, indices, vertices = facescape
    full = FaceScapeSource(root, index_file, crop_radius=0)
    cropped = FaceScapeSource(root, index_file, crop_radius=60.0)
    entry = full.entries()[0]
    a, b = full.load(entry.key), cropped.load(entry.key)
    assert 0 < len(b.surface.triangles) < len(a.surface.triangles)
    nose = a.landmarks[30]
    used = np.unique(b.surface.triangles)
    assert np.linalg.norm(b.surface.vertices[used] - nose, axis=1).max() <= 60.0


def test_facescape_refuses_meshes_with_too_few_vertices(facescape, tmp_path):
    root, index_file, _, _ = facescape
    small_v, small_f = sphere_mesh(subdivisions=1)  # 42 vertices < landmark indices
    bad = root / "3" / "models_reg" / "3_neutral.obj"
    write_obj(bad, small_v, small_f)
    source = FaceScapeSource(root, index_file, crop_radius=0)
    entry = next(e for e in source.entries() if e.subject == "3")
    with pytest.raises(DataError, match="3_neutral.obj: has 42 vertices"):
        source.load(entry.key)
    with pytest.raises(DataError, match="has no key 'v99'"):
        from se3unet.data.sources import read_facescape_indices
        read_facescape_indices(index_file, "v99")


def test_folder_source_pairs_scans_with_landmark_files(tmp_path):
    vertices, faces = sphere_mesh()
    rng = np.random.default_rng(1)
    landmarks = vertices[:5]
    write_obj(tmp_path / "alice" / "smile.obj", vertices, faces)
    np.savetxt(tmp_path / "alice" / "smile.landmarks.txt", landmarks)
    cloud = rng.normal(size=(3000, 3)) * 40
    np.save(tmp_path / "bob.npy", cloud)
    (tmp_path / "bob.landmarks.json").write_text(json.dumps({"landmarks": cloud[:5].tolist()}))
    np.save(tmp_path / "unlabelled.npy", cloud)
    entries = FolderSource(tmp_path).entries()
    assert [(e.subject, e.expression) for e in entries] == [("alice", "smile"), ("bob", "bob")]
    source = FolderSource(tmp_path)
    alice, bob = (source.load(e.key) for e in entries)
    assert alice.surface.is_mesh and np.allclose(alice.landmarks, landmarks, atol=1e-5)
    assert not bob.surface.is_mesh and np.allclose(bob.landmarks, cloud[:5])


def test_archive_source_reads_the_original_layout(tmp_path):
    rng = np.random.default_rng(2)
    points = rng.normal(size=(4, 500, 3)) * 0.5
    landmarks = points[:, :68]
    path = tmp_path / "train_neutral.npz"
    np.savez(path, point_list=points, landmark_list=landmarks, heatmaps_list=np.zeros((4, 500, 68)),
             subject_list=np.array([1, 1, 2, 3]), emotion_list=np.array(["neutral"] * 4),
             scale_list=np.array([0.0065, 0.0065, 0.007, 0.006]))
    source = ArchiveSource(path)
    entries = source.entries()
    assert [e.subject for e in entries] == ["1", "1", "2", "3"]
    scan = source.load(entries[2].key)
    assert np.allclose(scan.surface.vertices, points[2]) and scan.mm_per_unit == pytest.approx(1 / 0.007)
    npy = tmp_path / "test_neutral.npy"
    np.save(npy, {"point_list": points, "landmark_list": landmarks}, allow_pickle=True)
    assert len(ArchiveSource(npy).entries()) == 4


@pytest.mark.parametrize("content,problem", [
    (b"", "not a readable .npy"),
    (b"\x93NUMPY garbage", "not a readable .npy"),
])
def test_damaged_cloud_files_are_refused_by_name(tmp_path, content, problem):
    path = tmp_path / "scan.npy"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"scan.npy: {problem}"):
        read_surface(path)


def test_bad_landmark_and_mesh_files_are_refused_by_name(tmp_path):
    bad = tmp_path / "a.landmarks.txt"
    bad.write_text("1 2 3\n4 5\n")
    with pytest.raises(DataError, match="a.landmarks.txt"):
        read_landmarks(bad)
    wrong_shape = tmp_path / "b.landmarks.npy"
    np.save(wrong_shape, np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"b.landmarks.npy: landmarks must be an array of shape \[n, 3\]"):
        read_landmarks(wrong_shape)
    empty_obj = tmp_path / "empty.obj"
    empty_obj.write_text("")
    with pytest.raises(DataError, match="empty.obj"):
        read_surface(empty_obj)
    with pytest.raises(DataError, match="missing.ply: no such file"):
        read_surface(tmp_path / "missing.ply")
    nan_cloud = tmp_path / "nan.npy"
    np.save(nan_cloud, np.array([[0.0, np.nan, 1.0]] * 10))
    with pytest.raises(DataError, match="nan.npy: 10 points have non-finite"):
        read_surface(nan_cloud)


def test_archive_missing_keys_and_mismatched_lengths_are_refused(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, point_list=np.zeros((2, 10, 3)))
    with pytest.raises(DataError, match=r"a.npz: lacks \['landmark_list'\]"):
        ArchiveSource(path)
    np.savez(path, point_list=np.zeros((2, 10, 3)), landmark_list=np.zeros((3, 68, 3)))
    with pytest.raises(DataError, match="a.npz: point_list"):
        ArchiveSource(path)


def test_prepare_refuses_mismatched_landmark_counts_naming_the_scan(tmp_path):
    rng = np.random.default_rng(3)
    for name, k in (("a", 5), ("b", 6)):
        cloud = rng.normal(size=(400, 3)) * 40
        np.save(tmp_path / f"{name}.npy", cloud)
        np.save(tmp_path / f"{name}.landmarks.npy", cloud[:k])
    config = PrepareConfig(source="folder", path=str(tmp_path), points=100, samples=400, val=0, test=0)
    with pytest.raises(DataError, match="b.npy: has 6 landmarks, other scans 5"):
        prepare(config, tmp_path / "cache", progress=False)
