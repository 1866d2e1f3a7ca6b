"""Small helpers shared by several test files (test files do not import each other)."""


def write_obj(path, vertices, faces):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x:.17g} {y:.17g} {z:.17g}" for x, y, z in vertices]  # exact: a scaled copy stays exact
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def sphere_mesh(radius=80.0, subdivisions=3):
    """An icosphere's vertices and faces (numpy arrays)."""
    import numpy as np
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)
