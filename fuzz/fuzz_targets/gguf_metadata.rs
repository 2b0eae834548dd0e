#![no_main]

use candle_core::quantized::gguf_file::Content;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // GGUF metadata as Argus reads it before loading a model: the header and metadata, then the tokenizer built
    // from them.
    let Ok(content) = Content::read(&mut std::io::Cursor::new(data)) else { return };
    let _ = argus::models::gguf_tokenizer::from_gguf(&content, std::path::Path::new("x.gguf"));
});
