"""A face scan embedded in more surface: a skull-like cap behind it and a neck below, the way a
whole-head scan surrounds the face. Tests and experiments use it to check that predict finds
the face in a larger scan (se3unet.locate) without needing a head model's licence;
`embed_in_ict_head` puts the face in a real head's skull, ears and neck instead (ICT, MIT licence).

The face is taken as a Surrey Face Model face is posed: looking along +z, y up, in mm.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .io import Surface


def embed_in_head(face: Surface, rng: Optional[np.random.Generator] = None) -> Tuple[Surface, float]:
    """The face's mesh with a cap and an open neck tube added, sized from the face's bounding
    box, and the face's share of the whole surface area (about 0.3 for a Surrey face). With
    ``rng``, every proportion varies by up to 15% and the neck's lean by up to 0.15 rad, so that
    training data (`prepare --surround`) does not hold the one head the tests and experiments use."""
    import trimesh

    def vary(value: float) -> float:
        return value if rng is None else value * rng.uniform(0.85, 1.15)

    low, high = face.vertices.min(axis=0), face.vertices.max(axis=0)
    width, height, depth = high - low
    middle_x = (low[0] + high[0]) / 2
    cap = trimesh.creation.icosphere(subdivisions=4)
    cap.vertices = (cap.vertices * [vary(0.53) * width, vary(0.55) * height, vary(0.97) * depth]
                    + [middle_x, low[1] + vary(0.52) * height, low[2] + 2])
    cap = trimesh.Trimesh(cap.vertices, cap.faces[cap.triangles_center[:, 2] < low[2] + 14])  # behind the face's rim
    neck = trimesh.creation.cylinder(radius=vary(0.37) * width, height=vary(0.57) * height, sections=48)
    neck = trimesh.Trimesh(*trimesh.remesh.subdivide_to_size(neck.vertices, neck.faces[np.abs(neck.face_normals[:, 2]) < 0.5],
                                                             max_edge=10.0))  # an open tube of small triangles
    lean = 0.25 if rng is None else 0.25 + rng.uniform(-0.15, 0.15)
    neck.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2 - lean, [1, 0, 0]))  # leaning forward
    neck.apply_translation([middle_x, low[1] - vary(0.23) * height, low[2] + 2])
    face_mesh = trimesh.Trimesh(face.vertices, face.triangles, process=False)
    whole = trimesh.util.concatenate([face_mesh, cap, neck])
    return Surface(np.asarray(whole.vertices, dtype=np.float64), np.asarray(whole.faces)), face_mesh.area / whole.area


def embed_in_ict_head(face: Surface, face_landmarks: np.ndarray, landmark_names, ict_head: Surface,
                      ict_landmarks: np.ndarray, ict_face_vertices: int, gap: float = 6.0) -> Tuple[Surface, float]:
    """The face in a real head's skull, ears and neck: an ICT Face Model head, scaled, turned and
    moved onto the face by their shared landmarks (``landmark_names`` as "ibugN", NaN where the
    face has none), without the head's own face where the face covers it: every triangle within
    ``gap`` mm of the face, and the head's face-region triangles (vertices below
    ``ict_face_vertices``) inside the face's outline seen from the front.
    Returns the surface and the face's share of its area, as `embed_in_head` does."""
    import trimesh
    from scipy.spatial import ConvexHull, cKDTree

    from ..geometry.icp import similarity

    ibug = [int(n.removeprefix("ibug")) - 1 for n in landmark_names]
    defined = ~np.isnan(face_landmarks).any(axis=1)
    source, target = ict_landmarks[np.array(ibug)[defined]], face_landmarks[defined]
    scale, rotation, shift = similarity(source, target)
    vertices = scale * ict_head.vertices @ rotation.T + shift
    centres = vertices[ict_head.triangles].mean(axis=1)
    face_mesh = trimesh.Trimesh(face.vertices, face.triangles, process=False)
    near = cKDTree(face_mesh.sample(20000, seed=0)).query(centres, distance_upper_bound=gap)[0] < gap  # the bound: fast
    # The face's outline seen along z, the way it looks; half-planes, as Delaunay.find_simplex
    # searches by brute force for every point outside (tens of seconds a head).
    outline = ConvexHull(face.vertices[np.unique(face.triangles)][:, :2]).equations
    inside = (centres[:, :2] @ outline[:, :2].T + outline[:, 2] <= 0).all(axis=1)
    covered = (ict_head.triangles < ict_face_vertices).all(axis=1) & inside
    head = trimesh.Trimesh(vertices, ict_head.triangles[~(near | covered)])
    head.remove_unreferenced_vertices()
    whole = trimesh.util.concatenate([face_mesh, head])
    return Surface(np.asarray(whole.vertices, dtype=np.float64), np.asarray(whole.faces)), face_mesh.area / whole.area

