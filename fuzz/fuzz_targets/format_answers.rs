#![no_main]

use argus::formats::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The LLM's answer for every structured format, against a fixed news text (quotes are matched to it).
    let text = String::from_utf8_lossy(data);
    let news = "Building a wall on the U.S.-Mexico border will take literally years, the governor said on the radio.";
    for format in Format::ALL {
        let _ = argus::formats::parse(format, &text, news);
    }
});
