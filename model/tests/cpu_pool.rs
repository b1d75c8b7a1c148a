//! The CPU pools' defaults: candle's elementwise spin set short and the thread count pinned,
//! each unless the user chose one, and the matrix products' thread count read once. One test
//! function for all that reads or changes the environment, since tests run on threads of
//! one process.

use patchsweep_model::cpu_pool::{
    defaults_unless_set, matmul_threads, thread_count_to_pin, ELEMENTWISE_SPIN_ROUNDS,
    SPIN_LIMIT_VAR, THREADS_VAR,
};

#[test]
fn the_defaults_apply_unless_the_environment_chooses() {
    std::env::remove_var(SPIN_LIMIT_VAR);
    std::env::remove_var(THREADS_VAR);
    let candle_before = candle_core::utils::get_num_threads();
    let logical = std::thread::available_parallelism().unwrap().get();
    defaults_unless_set();
    assert_eq!(
        std::env::var(SPIN_LIMIT_VAR).unwrap(),
        ELEMENTWISE_SPIN_ROUNDS.to_string()
    );
    // rayon's count, pinned wherever candle would take as many or more, so rayon's pool
    // keeps its size and candle's fits the CPUs this process may use
    let pinned = std::env::var(THREADS_VAR).ok();
    if candle_before >= logical {
        assert_eq!(pinned, Some(logical.to_string()));
    } else {
        assert_eq!(pinned, None);
    }
    let candle_after = candle_before.min(logical);
    assert_eq!(candle_core::utils::get_num_threads(), candle_after);
    assert_eq!(matmul_threads(), candle_after);

    std::env::set_var(SPIN_LIMIT_VAR, "7");
    std::env::set_var(THREADS_VAR, "3");
    defaults_unless_set();
    assert_eq!(std::env::var(SPIN_LIMIT_VAR).unwrap(), "7");
    assert_eq!(std::env::var(THREADS_VAR).unwrap(), "3");
}

#[test]
fn the_pinned_count_is_rayons_unless_candle_takes_fewer() {
    assert_eq!(thread_count_to_pin(2, 2), Some(2));
    // an affinity mask or a cgroup quota: 4 CPUs of a 64-core node
    assert_eq!(thread_count_to_pin(64, 4), Some(4));
    // SMT: 16 logical CPUs on 8 cores; candle's own choice stands
    assert_eq!(thread_count_to_pin(8, 16), None);
}

/// A worker confined to fewer CPUs than the machine has (as Slurm's `--cpus-per-task` or a
/// cpuset does) runs candle's pools on those CPUs: the test above, again, under `taskset` to
/// one CPU, where candle alone would count every core of the machine.
#[test]
fn a_process_confined_to_one_cpu_pins_one_thread() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = std::process::Command::new("taskset").arg("-V").output();
    let Some(cpu) = first_allowed_cpu().filter(|_| cpus >= 2 && taskset.is_ok()) else {
        eprintln!("skipped: needs taskset and two CPUs");
        return;
    };
    let out = std::process::Command::new("taskset")
        .args(["-c", &cpu])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_defaults_apply_unless_the_environment_chooses",
        ])
        .env_remove(THREADS_VAR)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first CPU this process may run on (`Cpus_allowed_list` in `/proc/self/status`: a CI
/// container may not have CPU 0).
fn first_allowed_cpu() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    let first = list.trim().split([',', '-']).next()?;
    Some(first.to_string())
}

/// candle's `get_num_threads` may read `/proc/cpuinfo` on every call: the model's kernels ask
/// `cpu_pool::matmul_threads`, its one caller.
#[test]
fn only_cpu_pool_asks_candle_for_the_thread_count() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut callers = Vec::new();
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("cpu_pool.rs")
                && std::fs::read_to_string(&path)
                    .unwrap()
                    .contains("get_num_threads")
            {
                callers.push(path.display().to_string());
            }
        }
    }
    assert!(
        callers.is_empty(),
        "ask cpu_pool::matmul_threads instead: {callers:?}"
    );
}
