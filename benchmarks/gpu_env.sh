# Source on the GPU machine to make carried packages importable (the machine has torch, no internet).
#
#   .whl/*.whl        wheels, downloaded with `pip download --no-deps --only-binary=:all:
#                     --python-version 3.12 --platform manylinux_2_28_x86_64 ...`: diffusers==0.42.1,
#                     flash-attn-4==4.0.0b36 (--pre), nvidia-cutlass-dsl==4.8.1,
#                     nvidia-cutlass-dsl-libs-base==4.8.1, nvidia-cutlass-dsl-libs-core==4.8.1,
#                     quack-kernels, apache-tvm-ffi, torch-c-dlpack-ext
#   .fa4/*.tar.xz     nvidia-cutlass-dsl-libs-cu13==4.8.1's files: its 92 MB wheel is over the
#                     64 MiB a call may carry, so it is unzipped, its aarch64/QNX stubs dropped,
#                     repacked with `tar cf - . | xz -9e > cu13.tar.xz` (61 MiB), sent in a call of
#                     its own, and stays unpacked in $SITE while the machine is warm
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
