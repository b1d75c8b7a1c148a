//! How long candle's CPU thread pools wait busily between operations, and how many threads
//! the matrix products split into.
//!
//! candle runs matrix products on a rayon pool and elementwise kernels (adds, products,
//! activations) on a second pool of its own. After each elementwise kernel, that pool's
//! threads spin (25,000 rounds by default) before they sleep, on the very cores the next
//! matrix product's rayon threads need. In a forward pass, where every block alternates
//! the two, the spinning took a core from the products: on 2 cores the patching engine ran
//! about a tenth slower (SmolLM2, 16 pairs, three components: 472 against 523 patches/s,
//! six alternated rounds, each won by the short spin).

/// Spin rounds of the elementwise pool's threads before they sleep.
pub const ELEMENTWISE_SPIN_ROUNDS: u32 = 100;

/// candle's variable for [`ELEMENTWISE_SPIN_ROUNDS`], read once, when the pool starts.
pub const SPIN_LIMIT_VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Sets the elementwise pool's spin to [`ELEMENTWISE_SPIN_ROUNDS`] unless the environment
/// already chooses one.
fn short_spin_unless_set() {
    set_unless_chosen(SPIN_LIMIT_VAR, || Some(ELEMENTWISE_SPIN_ROUNDS));
}

/// rayon's variable for its pool's thread count, which candle reads for its own.
pub const THREADS_VAR: &str = "RAYON_NUM_THREADS";

/// Writes down the thread count rayon chooses (the CPUs this process may use: its affinity
/// mask and cgroup quota) for candle too, unless the environment already sets one, wherever
/// candle would otherwise take at least as many (see [`thread_count_to_pin`]). Without the
/// variable, candle counts the machine's physical cores in `/proc/cpuinfo`, on every matrix
/// product (about 30 µs, while the pool's threads wait), and ignores both the mask and the
/// quota: a worker given 4 CPUs of a 64-core node (Slurm `--cpus-per-task`, Kubernetes
/// `limits.cpu`) split each product 64 ways and kept 63 spinning elementwise threads.
fn pin_thread_count_unless_set() {
    set_unless_chosen(THREADS_VAR, || {
        let candle = candle_core::utils::get_num_threads();
        let rayon = std::thread::available_parallelism().map_or(1, |n| n.get());
        thread_count_to_pin(candle, rayon)
    });
}

/// Sets `var` to `value()` unless the environment already has it (or `value` gives none).
fn set_unless_chosen<T: ToString>(var: &str, value: impl FnOnce() -> Option<T>) {
    if std::env::var_os(var).is_none() {
        if let Some(value) = value() {
            std::env::set_var(var, value.to_string());
        }
    }
}

/// The count to pin, from candle's own choice (physical cores of the machine) and rayon's (the
/// CPUs this process may use): rayon's, so its pool never changes size, where candle would take
/// as many or more (the same count, or a mask or quota smaller than the machine); none where
/// candle takes fewer (SMT: rayon counts logical CPUs, candle cores, and the products run best
/// on cores).
pub fn thread_count_to_pin(candle: usize, rayon: usize) -> Option<usize> {
    (candle >= rayon).then_some(rayon)
}

/// Both defaults of this module, each unless the environment chooses: the short spin and the
/// pinned thread count. Call it first thing in `main`, while the process has one thread (it
/// sets environment variables) and before any tensor operation starts a pool.
pub fn defaults_unless_set() {
    short_spin_unless_set();
    pin_thread_count_unless_set();
}

/// candle's thread count for matrix products (`RAYON_NUM_THREADS`, else the physical cores),
/// read once, for the model's own kernels: where [`defaults_unless_set`] did not pin
/// it, candle reads `/proc/cpuinfo` on every call (in the patching grid of SmolLM2 that had
/// been a fifth of the main thread's samples).
pub fn matmul_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}
