# Sourced by the GPU scripts: wheels carried in .whl/ (packages the GPU image lacks, e.g.
# trimesh) go to /tmp/site, and the repository's src/ comes first on the path.
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
