"""Landmark files in the formats other tools write: round trips, files written the way those
tools write them, missing landmarks, coordinate systems, and the folder source's landmark set."""

import json

import numpy as np
import pytest

from se3unet.data.errors import DataError
from se3unet.data.landmark_files import (WRITTEN_FORMATS, FORMATS, format_landmarks, read_landmark_file, read_tps,
                                         unnamed)
from se3unet.data.sources import FolderSource
from helpers import sphere_mesh, write_obj

NAMES = ["tragion_left", "tragion_right", "glabella", "zygion left"]
POINTS = np.array([[-71.25, 3.5, -80.125], [70.0, 2.75, -79.5], [0.5, 41.0, 12.25], [-60.0, -1.0, -20.0]])


@pytest.mark.parametrize("fmt", WRITTEN_FORMATS)
def test_every_written_format_reads_back_the_same_points(tmp_path, fmt):
    points = POINTS.copy()
    points[2] = np.nan  # a landmark missing in this file stays missing
    path = tmp_path / f"face{FORMATS[fmt]}"
    path.write_text(format_landmarks(NAMES, points, fmt, scan="face.obj", confidence=np.array([1.0, 2.0, 3.0, 4.0])))
    found = read_tps(path)["face"] if fmt == "tps" else read_landmark_file(path)
    np.testing.assert_allclose(found.points, points, atol=1e-9)
    if fmt == "tps":  # TPS has no names
        assert found.names == unnamed(4)
    elif fmt == "pts":  # one token per name
        assert found.names == ["tragion_left", "tragion_right", "glabella", "zygion_left"]
    else:
        assert found.names == NAMES


def test_slicer_markups_json_as_slicer_writes_it_in_ras_and_lps(tmp_path):
    def markups(system, points, status=("defined", "defined")):
        return {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                           "Resources/Schema/markups-schema-v1.0.3.json#",
                "markups": [{"type": "Fiducial", "coordinateSystem": system, "coordinateUnits": "mm", "locked": False,
                             "labelFormat": "%N-%d", "controlPoints": [
                                 {"id": str(i + 1), "label": f"F-{i + 1}", "description": "", "associatedNodeID": "",
                                  "position": p, "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                                  "selected": True, "locked": False, "visibility": True, "positionStatus": s}
                                 for i, (p, s) in enumerate(zip(points, status))],
                             "measurements": [], "display": {"visibility": True, "opacity": 1.0}}]}

    ras = tmp_path / "ras.mrk.json"
    ras.write_text(json.dumps(markups("RAS", [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])))
    found = read_landmark_file(ras)
    assert found.names == ["F-1", "F-2"]
    np.testing.assert_allclose(found.points, [[-1, -2, 3], [-4, -5, 6]])  # the mesh's own (LPS) coordinates
    lps = tmp_path / "lps.mrk.json"
    lps.write_text(json.dumps(markups("LPS", [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], ("defined", "missing"))))
    found = read_landmark_file(lps)
    np.testing.assert_allclose(found.points[0], [1, 2, 3])
    assert np.isnan(found.points[1]).all()


def test_fcsv_as_slicer_and_slicermorph_write_it(tmp_path):
    old = tmp_path / "old.fcsv"  # Slicer 4.6: RAS, declared by number
    old.write_text("# Markups fiducial file version = 4.6\n# CoordinateSystem = 0\n"
                   "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n"
                   "vtkMRMLMarkupsFiducialNode_0,10.5,-3,7,0,0,0,1,1,1,0,nasion,,vtkMRMLModelNode4\n"
                   "vtkMRMLMarkupsFiducialNode_1,1,2,3,0,0,0,1,1,1,0,pronasale,,vtkMRMLModelNode4\n")
    found = read_landmark_file(old)
    assert found.names == ["nasion", "pronasale"]
    np.testing.assert_allclose(found.points, [[-10.5, 3, 7], [-1, -2, 3]])
    morph = tmp_path / "morph.fcsv"  # SlicerMorph's R writer: LPS, labels F-1, ...
    morph.write_text("# Markups fiducial file version = 4.13\n# CoordinateSystem = LPS\n"
                     "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID\n\n"
                     "vtkMRMLMarkupsFiducialNode_0,1.5,2.5,3.5,0,0,0,1,1,1,1,F-1,,")
    found = read_landmark_file(morph)
    assert found.names == ["F-1"] and np.allclose(found.points, [[1.5, 2.5, 3.5]])


def test_tps_collections_as_morphometrics_tools_write_them(tmp_path):
    path = tmp_path / "heads.tps"
    path.write_text("LM3=2\n1.0 2.0 3.0\n4 5 6\nIMAGE=scans/alice.ply\nID=alice\nSCALE=0.5\n\n"
                    "LM=2\n7 8 9\nNA NA NA\nIMAGE=bob.obj\n")
    found = read_tps(path)
    assert list(found) == ["alice", "bob"]  # by ID=, else IMAGE='s stem
    np.testing.assert_allclose(found["alice"].points, [[0.5, 1, 1.5], [2, 2.5, 3]])
    assert found["bob"].names == ["LM1", "LM2"] and np.isnan(found["bob"].points[1]).all()
    short = tmp_path / "short.tps"
    short.write_text("LM3=3\n1 2 3\n4 5 6\nID=x\n")
    with pytest.raises(DataError, match="short.tps: line 4: a specimen has fewer than its 3 landmarks"):
        read_tps(short)


def test_menpo_ljson_and_idav_pts_as_those_tools_write_them(tmp_path):
    menpo = tmp_path / "face.ljson"  # menpo v3: label groups, not one name per point; null = missing
    menpo.write_text(json.dumps({"version": 3, "groups": {"PTS": {
        "landmarks": {"points": [[1, 2, 3], [4, 5, 6], None], "connectivity": [[0, 1]]},
        "labels": [{"label": "nose", "mask": [0, 1]}, {"label": "mouth", "mask": [2]}]}}}))
    found = read_landmark_file(menpo)
    assert found.names == ["LM1", "LM2", "LM3"] and np.isnan(found.points[2]).all()
    idav = tmp_path / "face.pts"  # IDAV Landmark Editor: S0000-style names, two spaces apart
    idav.write_text("Version 1.0\n2\nS0000  1.000000  2.000000  3.000000 \nS0001  -4.5  5  6 \n")
    found = read_landmark_file(idav)
    assert found.names == ["S0000", "S0001"] and np.allclose(found.points[1], [-4.5, 5, 6])
    wrong = tmp_path / "wrong.pts"
    wrong.write_text("Version 1.0\n3\nS0000 1 2 3\n")
    with pytest.raises(DataError, match="wrong.pts: says 3 landmarks but holds 1"):
        read_landmark_file(wrong)


def test_bad_files_are_refused_naming_file_and_problem(tmp_path):
    twice = tmp_path / "twice.csv"
    twice.write_text("landmark,x,y,z\nnasion,1,2,3\nnasion,4,5,6\n")
    with pytest.raises(DataError, match="twice.csv: names a landmark more than once: nasion"):
        read_landmark_file(twice)
    word = tmp_path / "word.fcsv"
    word.write_text("# CoordinateSystem = LPS\nid0,one,2,3,0,0,0,1,1,1,0,a,,\n")
    with pytest.raises(DataError, match="word.fcsv: row 1: 'one' is not a number"):
        read_landmark_file(word)
    scene = tmp_path / "scene.mrk.json"
    scene.write_text(json.dumps({"@schema": "x", "markups": [{"coordinateSystem": "IJK", "controlPoints": []}]}))
    with pytest.raises(DataError, match="scene.mrk.json: coordinate system 'IJK'"):
        read_landmark_file(scene)


def _scans(tmp_path, count=3):
    vertices, faces = sphere_mesh()
    for i in range(count):
        write_obj(tmp_path / f"s{i}.obj", vertices + i, faces)
    return vertices


def test_folder_source_takes_the_union_of_names_and_leaves_the_rest_missing(tmp_path):
    vertices = _scans(tmp_path)
    (tmp_path / "s0.mrk.json").write_text(format_landmarks(["a", "b"], vertices[:2], "mrk.json"))
    (tmp_path / "s1.fcsv").write_text(format_landmarks(["b", "c"], vertices[2:4], "fcsv"))
    (tmp_path / "s2.landmarks.ljson").write_text(format_landmarks(["c"], vertices[4:5], "ljson"))
    source = FolderSource(tmp_path)
    assert source.landmark_names == ["a", "b", "c"]
    first, second, _ = (source.load(e.key).landmarks for e in source.entries())
    np.testing.assert_allclose(first[:2], vertices[:2])
    assert np.isnan(first[2]).all() and np.isnan(second[0]).all()
    np.testing.assert_allclose(second[1:], vertices[2:4])
    with pytest.raises(DataError, match=r"s1.fcsv: names landmarks outside the landmark set: c"):
        FolderSource(tmp_path, names=["a", "b"])


def test_folder_source_reads_a_tps_collection_with_the_users_names(tmp_path):
    vertices = _scans(tmp_path, 2)
    text = format_landmarks(["x", "y"], vertices[:2], "tps", scan="s0.obj") + \
        format_landmarks(["x", "y"], vertices[2:4] + 1, "tps", scan="s1.obj")
    (tmp_path / "all.tps").write_text(text)
    source = FolderSource(tmp_path, names=["nasion", "pogonion"])
    assert source.landmark_names == ["nasion", "pogonion"]
    np.testing.assert_allclose(source.load(source.entries()[1].key).landmarks, vertices[2:4] + 1)
    with pytest.raises(DataError, match=r"all.tps \(ID s0\): has 2 unnamed landmarks but the landmark set names 1"):
        FolderSource(tmp_path, names=["nasion"])
