# Source on the GPU machine to make carried packages importable (the machine has torch, no internet).
#
#   .whl/*.whl        wheels, downloaded here with `pip download --no-deps --python-version 3.12 ...`
#                     (diffusers, and flash-attn-4 with its pure-Python needs)
#   .fa4/*.tar.xz     nvidia-cutlass-dsl-libs-cu13's files, xz-packed: its wheel alone is over the
#                     transfer limit, so it travels in an earlier call and stays unpacked in $SITE
#
#   source benchmarks/gpu_env.sh            # unpack whatever was carried, set PYTHONPATH
SITE=${INVERSEDVS_SITE:-/tmp/site}
mkdir -p "$SITE"
for archive in .fa4/*.tar.xz; do
    [ -e "$archive" ] && tar -xJf "$archive" -C "$SITE"
done
for wheel in .whl/*.whl; do
    [ -e "$wheel" ] && python3 -m zipfile -e "$wheel" "$SITE"
done
export PYTHONPATH="$SITE:$SITE/nvidia_cutlass_dsl/dsl_packages${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
