//! The elementwise pool's spin: set short unless the user chose one. One test function,
//! since it changes the process's environment.

use patchsweep_model::cpu_pool::{short_spin_unless_set, ELEMENTWISE_SPIN_ROUNDS, SPIN_LIMIT_VAR};

#[test]
fn the_spin_is_short_unless_the_environment_chooses_one() {
    std::env::remove_var(SPIN_LIMIT_VAR);
    short_spin_unless_set();
    assert_eq!(
        std::env::var(SPIN_LIMIT_VAR).unwrap(),
        ELEMENTWISE_SPIN_ROUNDS.to_string()
    );

    std::env::set_var(SPIN_LIMIT_VAR, "7");
    short_spin_unless_set();
    assert_eq!(std::env::var(SPIN_LIMIT_VAR).unwrap(), "7");
}
