//! The trigger binary itself: a misconfiguration stops init with a sentence naming the setting.

#[test]
fn init_failures_name_the_setting() {
    wf_tests::functions::init_failures_name_the_setting(env!("CARGO_BIN_EXE_trigger"));
}
