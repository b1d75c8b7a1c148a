#!/usr/bin/env bash
# Profiles one patchsweep sweep on the GPU with Nsight Systems (where the device image has
# it): which CUDA kernels and API calls the time goes to. Writes the model and spec through
# gpu_patching.py (patchsweep side only, no warm-up), then runs the sweep under nsys and
# writes its kernel, API and memcpy summaries to OUT_DIR (CSV) and prints the kernels'. Usage (on the device machine):
#   bench/gpu/profile.sh OUT_DIR [gpu_patching.py options, e.g. --pairs 16 --grids resid_pre]
set -uo pipefail
out=$1; shift
work=/tmp/gprof
python3 bench/gpu_patching.py --binary bench/gpu/patchsweep-cuda.xz --workdir $work \
    --skip-peer --no-warmup "$@" > "$out/prepare.txt" 2>&1
tail -8 "$out/prepare.txt"
nsys=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems*/*/bin/nsys \
    /usr/local/cuda*/nsight-systems*/bin/nsys 2>/dev/null | head -1)
if [ -z "$nsys" ]; then
    echo "no nsys on this machine"; ls /usr/local/cuda*/bin 2>/dev/null | tr '\n' ' '; exit 0
fi
echo "nsys: $nsys"
env_ld=$(cd bench && python3 -c "import gpu_patching as g; print(g.cuda_lib_env('$work/patchsweep-cuda')['LD_LIBRARY_PATH'])" 2>/dev/null)
LD_LIBRARY_PATH=$env_ld "$nsys" profile -o /tmp/prof --force-overwrite true -t cuda \
    "$work/patchsweep-cuda" run "$work/bench.toml" --db "sqlite://$work/prof.db" > "$out/run.txt" 2>&1
"$nsys" stats -r cuda_gpu_kern_sum,cuda_api_sum,cuda_gpu_mem_time_sum --format csv \
    -o "$out/stats" /tmp/prof.nsys-rep > /dev/null 2>&1
head -40 "$out"/stats*cuda_gpu_kern_sum*.csv
