"""Peer for `argus bench generate`: the same GGUF file, the same prompt token ids, the same thread count, run by
llama.cpp (llama-cpp-python). Measures prompt processing (one batch) and greedy generation of N tokens, one token
per step, ignoring end-of-turn. Prints one JSON object on stdout.

    python generate_llamacpp.py --model FILE.gguf --tokens prompt.json --generate 64 --threads 1 --reps 3
"""
import argparse
import json
import statistics
import time

import numpy as np
from llama_cpp import Llama, __version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help="JSON list of prompt token ids")
    ap.add_argument("--generate", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    prompt = json.load(open(args.tokens))
    llm = Llama(model_path=args.model, n_ctx=max(512, len(prompt) + args.generate + 8), n_batch=512,
                n_threads=args.threads, n_threads_batch=args.threads, logits_all=False, verbose=False)
    prefill, decode, first_tokens = [], [], None
    for rep in range(args.reps + 1):  # the first round is a warm-up
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        out = []
        for _ in range(args.generate):
            tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))))
            out.append(tok)
            llm.eval([tok])
        t2 = time.perf_counter()
        if rep > 0:
            prefill.append(t1 - t0)
            decode.append(t2 - t1)
        first_tokens = first_tokens or out
    p, d = statistics.median(prefill), statistics.median(decode)
    print(json.dumps({
        "engine": f"llama.cpp (llama-cpp-python {__version__})",
        "threads": args.threads,
        "prompt_tokens": len(prompt),
        "generated_tokens": args.generate,
        "prompt_tokens_per_second": len(prompt) / p,
        "generate_tokens_per_second": args.generate / d,
        "greedy_tokens": first_tokens,
    }))


if __name__ == "__main__":
    main()
