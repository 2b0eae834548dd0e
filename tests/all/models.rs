//! Local models on real (small) weights: the MiniLM encoder and the SmolLM2-135M GGUF writer, fetched on first use
//! (CI fetches them once before the tests). Loading, tokenisation against llama.cpp's, encoder outputs against
//! PyTorch's, greedy tokens against llama.cpp's, the encoder cache, streaming, and every bad-model case.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use argus::jobs::NoProgress;
use argus::models::encoder::{Encoder, EncoderOptions};
use argus::models::encoder_cache::{EncoderCache, Stack};
use argus::models::generator::{Generator, GeneratorOptions};
use argus::models::{ChatModel, GenerationParams, ModelError, StopReason, catalog, fetch};
use argus::prompting::ChatMessage;
use candle_core::Device;

/// The path of catalog model `name`, fetched if missing.
pub fn model(name: &str) -> PathBuf {
    fetch::ensure(name, &NoProgress).unwrap_or_else(|e| panic!("cannot get model {name}: {e}"))
}

fn reference(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn encoder(max_len: usize) -> Encoder {
    let options = EncoderOptions { max_len, batch_size: 4, ..Default::default() };
    Encoder::load(&model(catalog::DEMO_ENCODER), &Device::Cpu, options).unwrap()
}

fn smollm() -> Generator {
    Generator::load(&model(catalog::TEST_GENERATOR), &Device::Cpu, &GeneratorOptions::default()).unwrap()
}

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage { role: "user".into(), content: text.into() }]
}

// ------------------------------------------------------------------------------------------------------------
// Encoder

#[test]
fn encoder_tokenises_pads_and_masks_to_a_fixed_length() {
    let enc = encoder(170);
    let tokens = enc.tokenize(&["Hello world", "Spices cure cancer, doctors hate them!"]).unwrap();
    assert_eq!(tokens.ids.dims(), &[2, 170]);
    let ids = tokens.ids.to_vec2::<u32>().unwrap();
    // [CLS] hello world [SEP], then padding (uncased WordPiece of bert-base-uncased's vocabulary).
    assert_eq!(&ids[0][..5], &[101, 7592, 2088, 102, 0]);
    assert_eq!(tokens.lengths[0], 4);
    let mask = tokens.mask.to_vec2::<u32>().unwrap();
    assert_eq!(mask[0].iter().sum::<u32>(), 4);
    assert!(tokens.lengths[1] > 8);
    // Truncation keeps [SEP] at the end.
    let long = "word ".repeat(500);
    let t = enc.tokenize(&[&long]).unwrap();
    assert_eq!(t.lengths[0], 170);
    assert_eq!(t.ids.to_vec2::<u32>().unwrap()[0][169], 102);
}

#[test]
fn encoder_matches_pytorch_sentence_embeddings() {
    // tests/data/minilm_reference.json: mean-pooled last hidden states of all-MiniLM-L6-v2 computed by PyTorch +
    // transformers (benches/peers/encoder_torch.py --reference), max length 128.
    let reference = reference("minilm_reference.json");
    let sentences: Vec<String> =
        reference["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let enc = encoder(128);
    let out = enc.encode(&refs).unwrap();
    assert_eq!(out.hidden.dims(), &[sentences.len(), 128, 384]);
    let pooled = Encoder::mean_pool(&out).unwrap().to_vec2::<f32>().unwrap();
    for (i, expected) in reference["mean_pooled"].as_array().unwrap().iter().enumerate() {
        let expected: Vec<f64> = expected.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(expected.len(), 384);
        let max = pooled[i].iter().zip(&expected).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(max < 1e-4, "sentence {i}: max difference from PyTorch {max}");
    }
}

#[test]
fn frozen_then_top_layers_equal_the_full_encoder_and_the_cache_encodes_once() {
    let enc = encoder(64);
    let texts = ["The moon landing was staged.", "Parliament passed the budget on Tuesday."];
    let full = enc.encode(&texts).unwrap();
    let frozen = enc.encode_frozen(&texts).unwrap();
    let top = enc.forward_top(&frozen).unwrap();
    let diff = (&full.hidden - &top).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "split encoder differs by {diff}");
    // The real tokens' rows (the batch padded only to its longest text and the padding packed away from every
    // position-wise step) equal the padded encoder's, for the whole encoder and for its frozen part.
    for (rows, padded) in
        [(enc.encode_rows(&texts, true).unwrap(), &full), (enc.encode_rows(&texts, false).unwrap(), &frozen)]
    {
        for (i, (n, values)) in rows.iter().enumerate() {
            let real = padded.mask.get(i).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as usize;
            assert_eq!(*n, real);
            let expected = padded.hidden.get(i).unwrap().narrow(0, 0, real).unwrap().flatten_all().unwrap();
            let expected = expected.to_vec1::<f32>().unwrap();
            assert_eq!(values.len(), expected.len());
            let worst = values.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "text {i}: rows differ from the padded encoder by {worst}");
        }
    }

    let mut cache = EncoderCache::in_memory().unwrap();
    let (first, stats) = cache.encode(&enc, Stack::Frozen, &texts).unwrap();
    assert_eq!((stats.hits, stats.encoded), (0, 2));
    let (again, stats) = cache.encode(&enc, Stack::Frozen, &[texts[1], texts[0], "A new text."]).unwrap();
    assert_eq!((stats.hits, stats.encoded), (2, 1));
    assert_eq!(cache.len().unwrap(), 3);
    // Cached rows equal freshly computed ones on real tokens; the top layers give the same result from either.
    let a = enc.forward_top(&first).unwrap().get(1).unwrap();
    let b = enc.forward_top(&again).unwrap().get(0).unwrap();
    let mask = first.mask.get(1).unwrap().unsqueeze(1).unwrap();
    let diff = (a - b).unwrap().broadcast_mul(&mask).unwrap().abs().unwrap().max_all().unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
}

// ------------------------------------------------------------------------------------------------------------
// GGUF writer

#[test]
fn gguf_tokenizer_matches_llama_cpp() {
    // tests/data/smollm2_tokens.json: llama.cpp's tokenisation (llama-cpp-python, special tokens parsed) of texts
    // chosen to cover digits, punctuation, unicode, whitespace runs and chat markers.
    let reference = reference("smollm2_tokens.json");
    let generator = smollm();
    let cases = reference["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let ours = generator.encode_prompt(text).unwrap();
        assert_eq!(ours, expected, "tokens of {text:?}");
    }
}

#[test]
fn greedy_generation_matches_llama_cpp_and_streams_the_same_text() {
    // tests/data/smollm2_greedy.json: llama.cpp's greedy continuation of the same prompt tokens.
    let reference = reference("smollm2_greedy.json");
    let prompt: Vec<u32> = reference["prompt"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let expected: Vec<u32> =
        reference["greedy"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    // On the file's own Q4_1 weights (no requantisation), as llama.cpp runs them.
    let options = GeneratorOptions { requantize: false, ..Default::default() };
    let mut exact = Generator::load(&model(catalog::TEST_GENERATOR), &Device::Cpu, &options).unwrap();
    let (_, _, tokens) = exact.time_greedy(&prompt, expected.len()).unwrap();
    let same = tokens.iter().zip(&expected).take_while(|(a, b)| a == b).count();
    eprintln!("greedy tokens identical to llama.cpp's: {same} of {}", expected.len());
    // Different kernels sum in a different order; a near-tie late in the answer may go either way.
    assert!(same >= 20, "only {same} greedy tokens agree: ours {tokens:?}, llama.cpp {expected:?}");
    // Requantised to Q8_0 (the default on the CPU) the weights change slightly: the answer starts the same.
    let mut generator = smollm();
    let (_, _, requantized) = generator.time_greedy(&prompt, expected.len()).unwrap();
    let same = requantized.iter().zip(&expected).take_while(|(a, b)| a == b).count();
    assert!(same >= 6, "only {same} greedy tokens agree after requantisation: {requantized:?} vs {expected:?}");

    let mut streamed = String::new();
    let completion = generator
        .chat(&user("Name three primary colours."), &GenerationParams::greedy(48), &mut |piece| {
            streamed.push_str(piece);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(!completion.text.is_empty());
    assert_eq!(streamed.trim(), completion.text);
    assert!(completion.completion_tokens > 0 && completion.prompt_tokens > 10);
    // Same seed, same answer.
    let again = generator
        .chat(&user("Name three primary colours."), &GenerationParams::greedy(48), &mut |_| ControlFlow::Continue(()));
    assert_eq!(again.unwrap().text, completion.text);
}

#[test]
fn generation_stops_at_end_of_turn_and_on_request() {
    let mut generator = smollm();
    let done = generator
        .chat(&user("Reply with the single word: yes"), &GenerationParams::greedy(64), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(done.stop, StopReason::EndOfTurn, "{done:?}");
    assert!(!done.text.contains("<|im_end|>"));
    let mut pieces = 0;
    let stopped = generator
        .chat(&user("Write a long story about a dragon."), &GenerationParams::greedy(200), &mut |_| {
            pieces += 1;
            if pieces >= 5 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })
        .unwrap();
    assert_eq!(stopped.stop, StopReason::Cancelled);
    assert!(stopped.completion_tokens <= 8);
    // Sampling is seeded: two runs with the same seed agree.
    let params = GenerationParams { max_tokens: 24, temperature: 0.9, top_p: Some(0.9), seed: 7 };
    let a = generator.chat(&user("Say something about the sea."), &params, &mut |_| ControlFlow::Continue(())).unwrap();
    let b = generator.chat(&user("Say something about the sea."), &params, &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(a.text, b.text);
}

// ------------------------------------------------------------------------------------------------------------
// Bad models: each a clear error that names the file.

fn copy_prefix(from: &Path, to: &Path, bytes: usize) {
    let data = std::fs::read(from).unwrap();
    std::fs::write(to, &data[..bytes.min(data.len())]).unwrap();
}

fn encoder_folder(dir: &Path, with_tokenizer: bool, truncate_weights: Option<usize>) -> PathBuf {
    let src = model(catalog::DEMO_ENCODER);
    let dst = dir.join("encoder");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join("config.json"), dst.join("config.json")).unwrap();
    if with_tokenizer {
        std::fs::copy(src.join("tokenizer.json"), dst.join("tokenizer.json")).unwrap();
    }
    match truncate_weights {
        Some(n) => copy_prefix(&src.join("model.safetensors"), &dst.join("model.safetensors"), n),
        None => {
            std::fs::copy(src.join("model.safetensors"), dst.join("model.safetensors")).unwrap();
        }
    }
    dst
}

fn assert_names(err: &ModelError, file: &Path, words: &str) {
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "error does not name {}: {text}", file.display());
    assert!(text.to_lowercase().contains(words), "error does not say `{words}`: {text}");
}

#[test]
fn truncated_safetensors_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = encoder_folder(dir.path(), true, Some(5_000_000));
    let err = Encoder::load(&folder, &Device::Cpu, EncoderOptions::default()).unwrap_err();
    assert_names(&err, &folder.join("model.safetensors"), "truncated");
    let folder2 = dir.path().join("tiny");
    std::fs::create_dir_all(&folder2).unwrap();
    std::fs::copy(folder.join("config.json"), folder2.join("config.json")).unwrap();
    std::fs::copy(folder.join("tokenizer.json"), folder2.join("tokenizer.json")).unwrap();
    std::fs::write(folder2.join("model.safetensors"), b"abc").unwrap();
    let err = Encoder::load(&folder2, &Device::Cpu, EncoderOptions::default()).unwrap_err();
    assert_names(&err, &folder2.join("model.safetensors"), "truncated");
}

#[test]
fn missing_tokenizer_is_refused_and_vocab_txt_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    let folder = encoder_folder(dir.path(), false, None);
    let err = Encoder::load(&folder, &Device::Cpu, EncoderOptions::default()).unwrap_err();
    assert_names(&err, &folder.join("tokenizer.json"), "tokenizer");
    // A bert-base-uncased style folder with only vocab.txt works the same.
    let vocab: Vec<String> = {
        let tok = tokenizers::Tokenizer::from_file(model(catalog::DEMO_ENCODER).join("tokenizer.json")).unwrap();
        let mut pairs: Vec<(String, u32)> = tok.get_vocab(true).into_iter().collect();
        pairs.sort_by_key(|(_, id)| *id);
        pairs.into_iter().map(|(t, _)| t).collect()
    };
    std::fs::write(folder.join("vocab.txt"), vocab.join("\n")).unwrap();
    let from_vocab = Encoder::load(&folder, &Device::Cpu, EncoderOptions::default()).unwrap();
    let a = from_vocab.tokenize(&["Fact-checkers VERIFY claims, don't they?"]).unwrap();
    let b = encoder(170).tokenize(&["Fact-checkers VERIFY claims, don't they?"]).unwrap();
    assert_eq!(a.ids.to_vec2::<u32>().unwrap(), b.ids.to_vec2::<u32>().unwrap());
}

#[test]
fn unsupported_architectures_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = encoder_folder(dir.path(), true, Some(100));
    let config = folder.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap().replace("\"bert\"", "\"gpt2\"");
    std::fs::write(&config, text).unwrap();
    let err = Encoder::load(&folder, &Device::Cpu, EncoderOptions::default()).unwrap_err();
    assert_names(&err, &config, "unsupported architecture `gpt2`");

    // A GGUF of an architecture the writer does not run.
    use candle_core::quantized::gguf_file::{self, Value};
    use candle_core::quantized::{GgmlDType, QTensor};
    let gguf = dir.path().join("mamba.gguf");
    let tensor = QTensor::quantize(
        &candle_core::Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let arch = Value::String("mamba".into());
    let mut file = std::fs::File::create(&gguf).unwrap();
    gguf_file::write(&mut file, &[("general.architecture", &arch)], &[("token_embd.weight", &tensor)]).unwrap();
    drop(file);
    let err = Generator::load(&gguf, &Device::Cpu, &GeneratorOptions::default()).unwrap_err();
    assert_names(&err, &gguf, "unsupported architecture `mamba`");
}

#[test]
fn truncated_or_foreign_gguf_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("half.gguf");
    copy_prefix(&model(catalog::TEST_GENERATOR), &truncated, 30_000_000);
    let err = Generator::load(&truncated, &Device::Cpu, &GeneratorOptions::default()).unwrap_err();
    assert_names(&err, &truncated, "truncated");
    let header_only = dir.path().join("header.gguf");
    copy_prefix(&model(catalog::TEST_GENERATOR), &header_only, 1000);
    let err = Generator::load(&header_only, &Device::Cpu, &GeneratorOptions::default()).unwrap_err();
    assert_names(&err, &header_only, "truncated");
    let foreign = dir.path().join("notes.gguf");
    std::fs::write(&foreign, "these are not weights").unwrap();
    let err = Generator::load(&foreign, &Device::Cpu, &GeneratorOptions::default()).unwrap_err();
    assert_names(&err, &foreign, "not a gguf");
    let missing = dir.path().join("absent.gguf");
    let err = Generator::load(&missing, &Device::Cpu, &GeneratorOptions::default()).unwrap_err();
    assert_names(&err, &missing, "not found");
}

#[test]
fn a_model_bigger_than_memory_is_refused_before_loading() {
    let budget = Some(16 << 20); // 16 MiB
    let gguf = model(catalog::TEST_GENERATOR);
    let options = GeneratorOptions { memory_budget: budget, ..Default::default() };
    let err = Generator::load(&gguf, &Device::Cpu, &options).unwrap_err();
    assert!(matches!(err, ModelError::TooBig { .. }), "{err}");
    assert_names(&err, &gguf, "memory");
    let folder = model(catalog::DEMO_ENCODER);
    let options = EncoderOptions { memory_budget: budget, ..Default::default() };
    let err = Encoder::load(&folder, &Device::Cpu, options).unwrap_err();
    assert_names(&err, &folder.join("model.safetensors"), "memory");
}

#[test]
fn sentencepiece_tokenizer_from_gemma3_metadata_matches_llama_cpp_and_the_model_runs() {
    // tests/data/gemma3_tokens.json: llama.cpp's tokenisation of the same texts with gemma-3-270m's vocabulary.
    let reference = reference("gemma3_tokens.json");
    let path = model("gemma-3-270m");
    let (content, info) = argus::models::generator::inspect(&path).unwrap();
    assert_eq!(info.architecture, "gemma3");
    let tokenizer = argus::models::gguf_tokenizer::from_gguf(&content, &path).unwrap();
    let mut mismatches = Vec::new();
    let cases = reference["cases"].as_array().unwrap();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let ours = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        if ours != expected {
            mismatches.push(format!("{text:?}: ours {ours:?}, llama.cpp {expected:?}"));
        }
        // Decoding gives the text back.
        assert_eq!(tokenizer.decode(&expected, true).unwrap(), text);
    }
    assert!(mismatches.is_empty(), "{} of {} differ:\n{}", mismatches.len(), cases.len(), mismatches.join("\n"));
    // The gemma3 family loads and generates (the base model babbles; that it runs is what is checked).
    let mut generator = Generator::load(&path, &Device::Cpu, &GeneratorOptions::default()).unwrap();
    let out = generator.chat(&user("Hello"), &GenerationParams::greedy(8), &mut |_| ControlFlow::Continue(())).unwrap();
    assert!(out.completion_tokens > 0);
}

#[test]
fn qwen2_tokenizer_from_gguf_metadata_matches_llama_cpp() {
    // The demo writer's vocabulary without its weights (`argus bench skeleton` of qwen2.5-coder-1.5b, 6 MB), and
    // llama.cpp's tokenisation of the same texts with the full model (tests/data/qwen2_tokens.json).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qwen2.5-coder-1.5b.skeleton.gguf");
    let (content, info) = argus::models::generator::inspect(&path).unwrap();
    assert_eq!(info.architecture, "qwen2");
    let tokenizer = argus::models::gguf_tokenizer::from_gguf(&content, &path).unwrap();
    let reference = reference("qwen2_tokens.json");
    for case in reference["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let expected: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tokenizer.encode(text, false).unwrap().get_ids(), expected.as_slice(), "tokens of {text:?}");
        assert_eq!(tokenizer.decode(&expected, false).unwrap(), text);
    }
}

// ------------------------------------------------------------------------------------------------------------
// Argus's own decode path (models::decoder): the same tokens as candle-transformers' models, prefix reuse, batches

fn both_paths(name: &str) -> (Generator, Generator) {
    let path = model(name);
    let own = Generator::load(&path, &Device::Cpu, &GeneratorOptions::default()).unwrap();
    assert!(own.uses_own_decoder(), "{name} runs on the own decode path");
    let options = GeneratorOptions { candle_transformers: true, ..Default::default() };
    (own, Generator::load(&path, &Device::Cpu, &options).unwrap())
}

fn rationale_asks() -> Vec<Vec<ChatMessage>> {
    let news = "The mayor said the city cut its budget by half last year while hiring 2,000 new teachers.";
    argus::prompting::builtin_perspectives()
        .iter()
        .filter(|p| p.generated)
        .map(|p| argus::prompting::rationale_messages(p, news))
        .collect()
}

/// Where two computations of the same model may part: the largest difference between their logits (`a`, `b`)
/// and the largest logit, for a tolerance relative to it.
fn logit_gap(a: &[f32], b: &[f32]) -> (f32, f32) {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    (a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())), scale)
}

/// The index of the largest logit, and by how much it leads the second.
fn top(l: &[f32]) -> (usize, f32) {
    let best = (0..l.len()).max_by(|&i, &j| l[i].total_cmp(&l[j])).unwrap();
    let second = (0..l.len()).filter(|&i| i != best).map(|i| l[i]).fold(f32::MIN, f32::max);
    (best, l[best] - second)
}

/// The own decode path computes what candle-transformers' model computes, on SmolLM2 (llama) and the demo writer
/// (qwen2), by teacher forcing: both are fed the same tokens (the reference's greedy choices after a rationale
/// prompt), and after the prompt and each of 24 tokens their logits agree within 5% of the largest and pick the
/// same next token at 20 or more of the 25 steps (a near-tie may go either way; free-running greedy decoding
/// would then part and compare two different texts, which is why this test feeds both the same tokens).
///
/// Why 5% and not float rounding: Argus's kernels (`models::qgemv`) sum exact integer products in another order
/// than candle's, and activations are quantised to 8 bits before every product, so a few of the next layer's
/// activations round to the neighbouring step; through the layers the logits differ by a few hundredths of the
/// largest (measured over the 25 steps: SmolLM2 up to 4.5% of the largest, the demo writer 3.7%; SmolLM2 picks
/// another token at one step, where the reference's led by 0.13).
#[test]
fn own_decode_path_matches_candle_transformers_models() {
    for name in [catalog::TEST_GENERATOR, catalog::DEMO_GENERATOR] {
        let (mut own, mut reference) = both_paths(name);
        let prompt = own.encode_prompt(&own.template().render(&rationale_asks()[0])).unwrap();
        let (_, _, tokens) = reference.time_greedy(&prompt, 24).unwrap();
        let theirs = reference.forced_logits(&prompt, &tokens).unwrap();
        let ours = own.forced_logits(&prompt, &tokens).unwrap();
        assert_eq!(ours.len(), 25);
        let (mut worst_rel, mut same) = (0f32, 0);
        for (step, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let (gap, scale) = logit_gap(a, b);
            assert!(gap <= 5e-2 * scale, "{name}, step {step}: logits differ by {gap} (largest {scale})");
            worst_rel = worst_rel.max(gap / scale);
            let ((mine, _), (best, lead)) = (top(a), top(b));
            if step < tokens.len() {
                assert_eq!(best as u32, tokens[step], "{name}, step {step}: the reference's greedy token");
            }
            if mine != best {
                eprintln!(
                    "{name}, step {step}: another next token (the reference's led by {lead:.3}; logits within {gap:.3})"
                );
            }
            same += usize::from(mine == best);
        }
        eprintln!("{name}: logits within {worst_rel:.3} of the largest; the same next token at {same} of 25 steps");
        assert!(same >= 20, "{name}: the same next token at only {same} of 25 steps");
    }
}

/// A prompt that continues the cached sequence (the verdict question after its rationale) runs only its new
/// tokens, and its logits are those of the same prompt run from its start (within the kernels' 8-bit level, as
/// above: the rationale's keys and values were computed one decoding step at a time, the fresh prompt's in one
/// pass), with the same next token.
#[test]
fn a_prompt_continuing_the_cached_one_reuses_it_and_answers_the_same() {
    let mut generator = smollm();
    let perspective = &argus::prompting::builtin_perspectives()[0];
    let news = "Scientists confirm that drinking seawater cures dehydration.";
    let asked = argus::prompting::rationale_messages(perspective, news);
    let rationale = generator.chat(&asked, &GenerationParams::greedy(40), &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(rationale.reused_prompt_tokens, 0, "a first prompt has nothing cached");
    let question = argus::prompting::verdict_messages(perspective, news, &rationale.text);
    let ids = generator.encode_prompt(&generator.template().render(&question)).unwrap();
    let (reused_logits, reused) = generator.cached_prompt_logits(&ids).unwrap();
    assert!(
        reused >= rationale.prompt_tokens,
        "the verdict reused {reused} tokens; the rationale's prompt alone has {}",
        rationale.prompt_tokens
    );
    let fresh = generator.prompt_logits(&ids).unwrap();
    let (gap, scale) = logit_gap(&reused_logits, &fresh);
    assert!(gap <= 5e-2 * scale, "logits differ by {gap} (largest {scale})");
    assert_eq!(top(&reused_logits).0, top(&fresh).0, "the answer's first token");
    // And through the chat interface: a continued prompt reuses the cache.
    generator.forget();
    generator.chat(&asked, &GenerationParams::greedy(40), &mut |_| ControlFlow::Continue(())).unwrap();
    let verdict = generator.chat(&question, &GenerationParams::greedy(12), &mut |_| ControlFlow::Continue(())).unwrap();
    assert!(verdict.reused_prompt_tokens >= rationale.prompt_tokens, "{verdict:?}");
    assert!(!verdict.text.is_empty());
}

/// An item's perspectives decoded together in one batch give each exactly the text it gets decoded alone (greedy),
/// each streamed on its own, on SmolLM2 and on the demo writer.
#[test]
fn perspectives_decoded_in_one_batch_answer_as_they_do_alone() {
    for name in [catalog::TEST_GENERATOR, catalog::DEMO_GENERATOR] {
        let path = model(name);
        let mut generator = Generator::load(&path, &Device::Cpu, &GeneratorOptions::default()).unwrap();
        assert!(generator.batches());
        let asks = rationale_asks();
        let params: Vec<GenerationParams> = [32, 20, 32].iter().map(|&n| GenerationParams::greedy(n)).collect();
        let mut streamed = vec![String::new(); asks.len()];
        let together = generator
            .chat_batch(&asks, &params, &mut |i, piece| {
                streamed[i].push_str(piece);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(together.len(), 3);
        for (i, (ask, params)) in asks.iter().zip(&params).enumerate() {
            generator.forget();
            let alone = generator.chat(ask, params, &mut |_| ControlFlow::Continue(())).unwrap();
            assert_eq!(together[i].text, alone.text, "{name}: perspective {i} alone and in the batch");
            assert_eq!(together[i].completion_tokens, alone.completion_tokens);
            assert!(together[i].completion_tokens <= params.max_tokens);
            assert_eq!(streamed[i].trim(), together[i].text, "{name}: perspective {i} streamed on its own");
        }
        // The second and third perspectives copied the shared system prompt from the first one's cache.
        assert!(together[1].reused_prompt_tokens > 20 && together[2].reused_prompt_tokens > 20, "{together:?}");
    }
}
