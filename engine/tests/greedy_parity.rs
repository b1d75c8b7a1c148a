//! Greedy generation on the real SmolLM2 equals transformers' `generate(do_sample=False)`
//! (engine/tests/golden/greedy_smollm2.json, from reference/greedy_generate.py).

mod smollm2_golden;

use patchsweep_engine::generate::greedy;
use patchsweep_model::NoHook;
use smollm2_golden::{golden, ids, smollm2};

#[test]
fn greedy_tokens_match_transformers_on_smollm2() {
    let golden = golden("greedy_smollm2.json");
    let loaded = smollm2();
    for case in golden["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = loaded.tokenizer.encode(prompt, None).unwrap();
        assert_eq!(prompt_ids, ids(&case["ids"]), "{prompt}");
        let expected = ids(&case["generated"]);
        let got = greedy(&loaded.model, &[prompt_ids], expected.len(), &mut NoHook)
            .unwrap()
            .remove(0);
        assert_eq!(got, expected, "{prompt}");
        assert_eq!(
            loaded.tokenizer.decode(&got).unwrap(),
            case["text"].as_str().unwrap(),
            "{prompt}"
        );
    }
}
