"""Peer for `argus bench encoder`: the same BERT folder, sentences, batch size, length and thread count, run by
PyTorch + transformers. Prints one JSON object on stdout.

    python encoder_torch.py --model DIR --inputs sentences.json --batch 32 --length 128 --threads 1 --reps 5
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoTokenizer, BertModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs", required=True, help="JSON list of sentences (one batch)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dump", help="write the first sentence's last hidden state (JSON) here, for a cross-check")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    sentences = json.load(open(args.inputs))[: args.batch]
    tok = AutoTokenizer.from_pretrained(args.model)
    model = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval()
    enc = tok(sentences, padding="max_length", truncation=True, max_length=args.length, return_tensors="pt")
    with torch.inference_mode():
        out = model(**enc).last_hidden_state  # warm-up
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            model(**enc)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    if args.dump:
        json.dump(out[0].tolist(), open(args.dump, "w"))
    print(json.dumps({
        "engine": f"pytorch {torch.__version__} + transformers",
        "threads": torch.get_num_threads(),
        "batch": len(sentences),
        "length": args.length,
        "median_seconds": med,
        "sentences_per_second": len(sentences) / med,
        "real_tokens": int(enc["attention_mask"].sum()),
    }))


if __name__ == "__main__":
    main()
