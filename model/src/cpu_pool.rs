//! How long candle's CPU thread pools wait busily between operations.
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
/// already chooses one. Call it first thing in `main`, while the process has one thread
/// (it sets an environment variable) and before any tensor operation starts the pool.
pub fn short_spin_unless_set() {
    if std::env::var_os(SPIN_LIMIT_VAR).is_none() {
        std::env::set_var(SPIN_LIMIT_VAR, ELEMENTWISE_SPIN_ROUNDS.to_string());
    }
}
