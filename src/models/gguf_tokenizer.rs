//! A `tokenizers::Tokenizer` built from a GGUF file's own tokenizer metadata (`tokenizer.ggml.*`), for GGUF files
//! that ship no tokenizer.json.
//!
//! Supported: byte-level BPE vocabularies (`tokenizer.ggml.model = gpt2`, as used by SmolLM2, Qwen2, Llama 3), with
//! the pre-tokenizer named by `tokenizer.ggml.pre`; and SentencePiece BPE vocabularies (`llama`, as used by Gemma),
//! whose merges are derived from the piece scores the way Hugging Face converts them, with byte fallback. Control
//! and user-defined tokens become added tokens, so chat markers such as `<|im_start|>` are single tokens. Other
//! vocabularies need a tokenizer.json beside the model.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::{ModelError, Result};

/// GPT-2 style split used by Qwen2 (digits one by one).
const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3 (digits in groups of up to three).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// Builds the tokenizer described by `content`'s metadata; `path` is only used in error messages.
pub fn from_gguf(content: &Content, path: &Path) -> Result<Tokenizer> {
    let meta = |key: &str| {
        content.metadata.get(key).ok_or_else(|| {
            ModelError::file(path, format!("no `{key}` in the GGUF metadata, and no tokenizer.json beside it"))
        })
    };
    let model = meta("tokenizer.ggml.model")?.to_string().map_err(ModelError::candle(path.display()))?.clone();
    if model == "llama" {
        return sentencepiece(content, path);
    }
    if model != "gpt2" {
        return Err(ModelError::file(
            path,
            format!(
                "its vocabulary is of type `{model}`; Argus builds tokenizers from GGUF metadata only for byte-level \
                 BPE (`gpt2`) vocabularies: put the model's tokenizer.json beside it"
            ),
        ));
    }
    let tokens = strings(meta("tokenizer.ggml.tokens")?, path)?;
    let merges = strings(meta("tokenizer.ggml.merges")?, path)?;
    let types: Vec<i64> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Array(values)) => values.iter().map(value_as_i64).collect(),
        _ => vec![1; tokens.len()],
    };
    let pre = content.metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();

    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| ModelError::file(path, format!("malformed merge `{m}` in tokenizer.ggml.merges")))
        })
        .collect::<Result<_>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre == "llama-bpe" || pre == "llama3")
        .build()
        .map_err(|e| ModelError::file(path, format!("building the BPE tokenizer: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let pre_tokenizer: PreTokenizerWrapper = match pre.as_str() {
        "qwen2" | "deepseek-llm" => split_then_bytes(QWEN2_PATTERN, path)?,
        "llama3" | "llama-bpe" | "smaug-bpe" => split_then_bytes(LLAMA3_PATTERN, path)?,
        "smollm" | "starcoder" | "refact" => Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ])
        .into(),
        _ => ByteLevel::new(false, true, true).into(),
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    if pre == "qwen2" {
        tokenizer.with_normalizer(Some(NFC)).map_err(|e| ModelError::file(path, e))?;
    }
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    add_marked_tokens(&mut tokenizer, &tokens, &types, path)?;
    Ok(tokenizer)
}

/// A SentencePiece BPE vocabulary (tokens, scores, token types) as a `tokenizers` BPE with byte fallback.
fn sentencepiece(content: &Content, path: &Path) -> Result<Tokenizer> {
    use tokenizers::decoders::byte_fallback::ByteFallback;
    use tokenizers::decoders::fuse::Fuse;
    use tokenizers::decoders::sequence::Sequence as DecoderSequence;
    use tokenizers::normalizers::prepend::Prepend;
    use tokenizers::normalizers::replace::Replace;
    use tokenizers::{DecoderWrapper, NormalizerWrapper};

    let get = |key: &str| {
        content.metadata.get(key).ok_or_else(|| ModelError::file(path, format!("no `{key}` in the GGUF metadata")))
    };
    let tokens = strings(get("tokenizer.ggml.tokens")?, path)?;
    let scores: Vec<f32> = match get("tokenizer.ggml.scores")? {
        Value::Array(values) => values.iter().map(|v| v.to_f32().unwrap_or(0.0)).collect(),
        _ => return Err(ModelError::file(path, "tokenizer.ggml.scores is not an array")),
    };
    let types: Vec<i64> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Array(values)) => values.iter().map(value_as_i64).collect(),
        _ => vec![1; tokens.len()],
    };
    let unk = content
        .metadata
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .and_then(|id| tokens.get(id as usize).cloned())
        .unwrap_or_else(|| "<unk>".to_owned());
    let add_space_prefix =
        content.metadata.get("tokenizer.ggml.add_space_prefix").and_then(|v| v.to_bool().ok()).unwrap_or(true);
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    // Merges: every split of a normal piece into two pieces of the vocabulary, best-scored pieces first.
    let ids: std::collections::HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
    let mut merges: Vec<(f32, usize, usize, String, String)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if types.get(id).copied().unwrap_or(1) != 1 || piece.chars().count() < 2 {
            continue;
        }
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if let (Some(&l), Some(&r)) = (ids.get(left), ids.get(right)) {
                merges.push((scores[id], l, r, left.to_owned(), right.to_owned()));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges: Vec<(String, String)> = merges.into_iter().map(|(_, _, _, l, r)| (l, r)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .unk_token(unk)
        .fuse_unk(true)
        .build()
        .map_err(|e| ModelError::file(path, format!("building the SentencePiece tokenizer: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let replace = Replace::new(" ", "\u{2581}").map_err(|e| ModelError::file(path, e))?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        tokenizers::normalizers::Sequence::new(vec![
            NormalizerWrapper::Prepend(Prepend::new("\u{2581}".to_owned())),
            NormalizerWrapper::Replace(replace),
        ])
        .into()
    } else {
        replace.into()
    };
    tokenizer.with_normalizer(Some(normalizer)).map_err(|e| ModelError::file(path, e))?;
    let unspace = Replace::new("\u{2581}", " ").map_err(|e| ModelError::file(path, e))?;
    tokenizer.with_decoder(Some(DecoderSequence::new(vec![
        DecoderWrapper::Replace(unspace),
        DecoderWrapper::ByteFallback(ByteFallback::new()),
        DecoderWrapper::Fuse(Fuse::new()),
    ])));
    add_marked_tokens(&mut tokenizer, &tokens, &types, path)?;
    Ok(tokenizer)
}

/// Control tokens become special added tokens (skipped when decoding); user-defined ones plain added tokens.
fn add_marked_tokens(tokenizer: &mut Tokenizer, tokens: &[String], types: &[i64], path: &Path) -> Result<()> {
    let marked = |kind: i64| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(types)
            .filter(|(_, t)| **t == kind)
            .map(|(tok, _)| AddedToken::from(tok.clone(), kind == TOKEN_CONTROL).normalized(false))
            .collect()
    };
    tokenizer.add_special_tokens(marked(TOKEN_CONTROL)).map_err(|e| ModelError::file(path, e))?;
    tokenizer.add_tokens(marked(TOKEN_USER_DEFINED)).map_err(|e| ModelError::file(path, e))?;
    Ok(())
}

fn split_then_bytes(pattern: &str, path: &Path) -> Result<PreTokenizerWrapper> {
    let split = Split::new(SplitPattern::Regex(pattern.to_owned()), SplitDelimiterBehavior::Isolated, false)
        .map_err(|e| ModelError::file(path, format!("pre-tokenizer pattern: {e}")))?;
    Ok(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
    ])
    .into())
}

fn strings(value: &Value, path: &Path) -> Result<Vec<String>> {
    let Value::Array(values) = value else {
        return Err(ModelError::file(path, "tokenizer metadata is not an array"));
    };
    values.iter().map(|v| v.to_string().cloned().map_err(ModelError::candle(path.display()))).collect()
}

fn value_as_i64(v: &Value) -> i64 {
    match v {
        Value::I32(x) => *x as i64,
        Value::U32(x) => *x as i64,
        Value::I64(x) => *x,
        Value::U64(x) => *x as i64,
        Value::I8(x) => *x as i64,
        Value::U8(x) => *x as i64,
        Value::I16(x) => *x as i64,
        Value::U16(x) => *x as i64,
        _ => 1,
    }
}
