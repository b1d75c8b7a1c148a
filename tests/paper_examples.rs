//! The paper's example specs (examples/*.toml) and the public config.json of each model
//! (examples/configs/): every spec parses as the CLI parses it, and every config normalizes to
//! the shapes in the table below, with no download. The table is written from the models'
//! published architecture (model cards and config.json on the Hub), so a wrong config file, a
//! regression in the config parser or a spec pointing at the wrong model fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use patchsweep_api::spec::{ParsedSpec, SpecError, SweepSpec};
use patchsweep_api::spec_files::inline_files;
use patchsweep_engine::grid::Component;
use patchsweep_model::config::{HfConfig, RopeScaling};
use patchsweep_model::{Architecture, ModelConfig, ModelSpec};

/// One of the paper's models as its published architecture describes it.
struct Known {
    spec: &'static str,
    config: &'static str,
    repo: &'static str,
    architecture: Architecture,
    n_layers: usize,
    n_heads: usize,
    n_kv_heads: usize,
    d_model: usize,
    d_head: usize,
    d_mlp: usize,
    vocab: usize,
    rope_theta: f32,
    /// Sliding attention window; `None` is full causal attention.
    window: Option<usize>,
    max_positions: u64,
    bos: u32,
}

const KNOWN: &[Known] = &[
    Known {
        spec: "llama2-7b-professions.toml",
        config: "Llama-2-7b-hf.json",
        repo: "meta-llama/Llama-2-7b-hf",
        architecture: Architecture::Llama,
        n_layers: 32,
        n_heads: 32,
        n_kv_heads: 32, // multi-head attention, no GQA
        d_model: 4096,
        d_head: 128,
        d_mlp: 11008,
        vocab: 32000,
        rope_theta: 10_000.0, // absent from its config.json: the default
        window: None,
        max_positions: 4096,
        bos: 1,
    },
    Known {
        spec: "llama3-8b-professions.toml",
        config: "Meta-Llama-3-8B.json",
        repo: "meta-llama/Meta-Llama-3-8B",
        architecture: Architecture::Llama,
        n_layers: 32,
        n_heads: 32,
        n_kv_heads: 8,
        d_model: 4096,
        d_head: 128,
        d_mlp: 14336,
        vocab: 128256,
        rope_theta: 500_000.0,
        window: None,
        max_positions: 8192,
        bos: 128000,
    },
    Known {
        spec: "mistral-7b-v0.3-professions.toml",
        config: "Mistral-7B-v0.3.json",
        repo: "mistralai/Mistral-7B-v0.3",
        architecture: Architecture::Mistral,
        n_layers: 32,
        n_heads: 32,
        n_kv_heads: 8,
        d_model: 4096,
        d_head: 128,
        d_mlp: 14336,
        vocab: 32768,
        rope_theta: 1_000_000.0,
        window: None, // v0.1 had a 4096 window; v0.3 attends to everything
        max_positions: 32768,
        bos: 1,
    },
];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a spec as `patchsweep submit` does (the files it names read and inlined). A build
/// without CUDA cannot open `cuda:0`, and
/// `SweepSpec::parse` checks the device: there, that one refusal is accepted (and checked to be
/// exactly that), and everything else is checked on the same text with the device swapped for
/// the CPU.
fn parse(path: &Path) -> ParsedSpec {
    let text = inline_files(&read(path), 1 << 28, path.parent().unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let origin = path.display().to_string();
    match SweepSpec::parse(&text, &origin) {
        Ok(p) => p,
        Err(SpecError::Field { field, reason })
            if field == "device"
                && reason.contains("no CUDA support")
                && !cfg!(feature = "cuda") =>
        {
            let cpu = text
                .replace("device = \"cuda:0\"", "device = \"cpu\"")
                .replace("dtype = \"bf16\"", "dtype = \"f32\"");
            assert_ne!(
                cpu, text,
                "{origin}: device refused but not cuda:0/bf16: {reason}"
            );
            let mut p = SweepSpec::parse(&cpu, &origin)
                .unwrap_or_else(|e| panic!("{origin} (device swapped for the CPU): {e}"));
            p.spec.device = "cuda:0".into();
            p.spec.dtype = "bf16".into();
            p
        }
        Err(e) => panic!("{e}"),
    }
}

fn config(name: &str) -> (ModelConfig, serde_json::Value) {
    let path = examples().join("configs").join(name);
    let text = read(&path);
    let origin = path.display().to_string();
    let cfg = HfConfig::from_json(&text, &origin)
        .and_then(|c| c.to_model_config(&origin))
        .unwrap_or_else(|e| panic!("{e}"));
    (cfg, serde_json::from_str(&text).unwrap())
}

#[test]
fn configs_normalize_to_the_published_shapes() {
    for k in KNOWN {
        let (cfg, raw) = config(k.config);
        let at = k.config;
        assert_eq!(cfg.architecture, k.architecture, "{at}: architecture");
        assert_eq!(cfg.n_layers, k.n_layers, "{at}: n_layers");
        assert_eq!(cfg.n_heads, k.n_heads, "{at}: n_heads");
        assert_eq!(cfg.n_kv_heads, k.n_kv_heads, "{at}: n_kv_heads");
        assert_eq!(cfg.d_model, k.d_model, "{at}: d_model");
        assert_eq!(cfg.d_head, k.d_head, "{at}: d_head");
        assert_eq!(
            cfg.n_heads * cfg.d_head,
            cfg.d_model,
            "{at}: heads × d_head"
        );
        assert_eq!(cfg.gqa_group(), k.n_heads / k.n_kv_heads, "{at}: GQA group");
        assert_eq!(cfg.d_mlp, k.d_mlp, "{at}: d_mlp");
        assert_eq!(cfg.vocab_size, k.vocab, "{at}: vocab");
        assert_eq!(cfg.rope_theta, k.rope_theta, "{at}: rope theta");
        assert_eq!(cfg.rope_scaling, None::<RopeScaling>, "{at}: rope scaling");
        assert_eq!(cfg.sliding_window, k.window, "{at}: attention window");
        assert_eq!(cfg.rms_norm_eps, 1e-5, "{at}: rms eps");
        assert!(!cfg.tie_word_embeddings, "{at}: untied embeddings");
        assert!(!cfg.qkv_bias, "{at}: no q/k/v bias");
        assert_eq!(cfg.bos_token_id, Some(k.bos), "{at}: bos");
        assert_eq!(
            raw["max_position_embeddings"].as_u64(),
            Some(k.max_positions),
            "{at}: max positions"
        );
        assert_eq!(raw["hidden_act"], "silu", "{at}: activation");
    }
}

#[test]
fn paper_specs_parse_and_fit_their_models() {
    for k in KNOWN {
        let path = examples().join(k.spec);
        let parsed = parse(&path);
        let s = &parsed.spec;
        let at = k.spec;
        assert_eq!(s.model, format!("hf:{}", k.repo), "{at}: model");
        assert_eq!(
            s.model.parse::<ModelSpec>().unwrap(),
            ModelSpec::Hub {
                repo: k.repo.into(),
                revision: None
            },
            "{at}: model spec"
        );
        assert_eq!(
            (s.device.as_str(), s.dtype.as_str()),
            ("cuda:0", "bf16"),
            "{at}"
        );
        assert_eq!(
            s.dataset.builtin.as_deref(),
            Some("professions"),
            "{at}: dataset"
        );
        let words: Vec<&str> = s
            .metric
            .positive
            .iter()
            .chain(&s.metric.negative)
            .map(|w| w.trim())
            .collect();
        assert_eq!(words, ["he", "she"], "{at}: answers");

        // The dataset needs no tokenizer: all 17 templates are there.
        let pairs = parsed
            .pairs
            .as_ref()
            .expect("professions builds without a tokenizer");
        let templates: BTreeSet<_> = pairs.iter().filter_map(|p| p.template.clone()).collect();
        assert_eq!(templates.len(), 17, "{at}: templates {templates:?}");

        // Activation and attribution patching of the components (layers × positions) and heads.
        let (cfg, _) = config(k.config);
        let mut seen = BTreeSet::new();
        for e in &parsed.experiments {
            e.grid
                .validate(&cfg)
                .unwrap_or_else(|err| panic!("{at}: experiment {}: {err}", e.name));
            for c in &e.grid.components {
                seen.insert((format!("{:?}", e.method), *c));
            }
            // Every layer, every head: the grid spans the model's shape.
            let cells = e.grid.cells(&cfg, 6, &[]).unwrap();
            let per_layer = if e.grid.components == [Component::HeadOut] {
                assert_eq!(e.grid.heads, None, "{at}: {} keeps every head", e.name);
                k.n_heads
            } else {
                6 * e.grid.components.len()
            };
            assert_eq!(
                cells.len(),
                k.n_layers * per_layer,
                "{at}: {} cells",
                e.name
            );
        }
        for method in ["Activation", "Attribution"] {
            for c in [
                Component::ResidPre,
                Component::AttnOut,
                Component::MlpOut,
                Component::HeadOut,
            ] {
                assert!(
                    seen.contains(&(method.to_string(), c)),
                    "{at}: no {method} experiment over {c}"
                );
            }
        }
    }
}

/// Every spec in examples/ (the demo ones too) parses, and every Hub model among them has a
/// row in the table above.
#[test]
fn every_example_parses() {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    specs.sort();
    assert!(specs.len() > KNOWN.len(), "{specs:?}");
    for path in specs {
        let parsed = parse(&path);
        if let Some(repo) = parsed.spec.model.strip_prefix("hf:") {
            assert!(
                KNOWN.iter().any(|k| k.repo == repo),
                "{}: {repo} has no row in KNOWN",
                path.display()
            );
        }
    }
}

/// The paper's pipeline specs (examples/paper-*.toml): each fits its model's shape (layer
/// ranges, every head), its copying heads are the top k of the head attribution ranking,
/// and that selection runs one stage after the ranking.
#[test]
fn paper_pipeline_specs_fit_their_models() {
    let smollm2 = ModelConfig {
        n_layers: 30,
        n_heads: 9,
        n_kv_heads: 3,
        ..config(KNOWN[0].config).0
    };
    let cases = [
        ("paper-llama2-7b.toml", config(KNOWN[0].config).0),
        ("paper-llama3-8b.toml", config(KNOWN[1].config).0),
        ("paper-mistral-7b-v0.3.toml", config(KNOWN[2].config).0),
        ("paper-smollm2.toml", smollm2),
    ];
    for (name, cfg) in cases {
        let parsed = parse(&examples().join(name));
        for e in &parsed.experiments {
            e.grid
                .validate(&cfg)
                .unwrap_or_else(|err| panic!("{name}: experiment {}: {err}", e.name));
        }
        let copying = parsed
            .experiments
            .iter()
            .find(|e| e.name == "copying")
            .expect("a copying stage");
        let s = &copying.grid.selections[0];
        assert_eq!(
            (s.experiment.as_str(), s.component, s.top_k.as_slice()),
            ("heads-attr", Component::HeadOut, &[5, 10, 30, 90][..]),
            "{name}"
        );
        let stages = patchsweep_api::spec::selection_stages(&parsed.spec.experiments).unwrap();
        assert_eq!((stages["heads-attr"], stages["copying"]), (0, 1), "{name}");
        // Every head of the middle band: layers × heads sites at the last position.
        let band = &copying.grid.pathways[0];
        assert_eq!(band.name, "middle-layer-heads");
        let sites = band.sites[0].coordinates(&cfg);
        assert_eq!(sites.len(), 10 * cfg.n_heads, "{name}");
    }
}
