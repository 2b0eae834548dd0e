"""Peer for `argus bench encoder`: the same BERT folder, sentences, batch size, length and thread count, run by
PyTorch + transformers. Prints one JSON object on stdout.

    python encoder_torch.py --model DIR --inputs sentences.json --batch 32 --length 128 --threads 1 --reps 5

With --corpus, every text of the file is encoded once, `--batch` at a time, two ways, each timed over the whole
corpus: `padded` as ARG's reference code feeds BERT (every text padded to --length), and `sorted` (texts sorted by
token count, each batch padded only to its longest: the best a padded PyTorch batch can do).
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
    ap.add_argument("--corpus", action="store_true", help="encode every text once, padded and sorted (see above)")
    args = ap.parse_args()
    if args.corpus:
        return corpus(args)

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


def corpus(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    texts = json.load(open(args.inputs))
    tok = AutoTokenizer.from_pretrained(args.model)
    model = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval()
    lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=args.length)["input_ids"]]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])

    def run(batches, padding):
        t0 = time.perf_counter()
        for b in batches:
            enc = tok(b, padding=padding, truncation=True, max_length=args.length, return_tensors="pt")
            model(**enc)
        return time.perf_counter() - t0

    chunks = lambda xs: [xs[i : i + args.batch] for i in range(0, len(xs), args.batch)]
    with torch.inference_mode():
        model(**tok(texts[: args.batch], padding="max_length", truncation=True, max_length=args.length,
                    return_tensors="pt"))  # warm-up
        padded = run(chunks(texts), "max_length")
        ordered = run(chunks([texts[i] for i in order]), "longest")
    print(json.dumps({
        "engine": f"pytorch {torch.__version__} + transformers",
        "threads": torch.get_num_threads(),
        "texts": len(texts),
        "real_tokens": sum(lengths),
        "padded_seconds": padded,
        "padded_texts_per_second": len(texts) / padded,
        "sorted_seconds": ordered,
        "sorted_texts_per_second": len(texts) / ordered,
    }))


if __name__ == "__main__":
    main()
