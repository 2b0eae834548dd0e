"""Peer for `argus bench generate`'s item figure: llama.cpp (llama-cpp-python) writes an item's rationales and asks
for their verdicts exactly as Argus's writer does, one after another: for each perspective, greedy generation from
the rationale messages (ChatML) until the end of the turn or --max-tokens, then the verdict question appended to
the conversation with the rationale it wrote (stripped), greedy, up to --verdict-tokens. llama-cpp-python's
high-level completion reuses the cached prefix of the previous prompt, as a server would. Same GGUF, same thread
count. Prints one JSON object on stdout.

    python item_llamacpp.py --model FILE.gguf --tasks tasks.json --threads 2 --reps 1

tasks.json: [{"messages": [{"role": ..., "content": ...}, ...], "question": "..."}, ...]
"""
import argparse
import json
import statistics
import time

from llama_cpp import Llama, __version__


def chatml(messages):
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + "<|im_start|>assistant\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--verdict-tokens", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    tasks = json.load(open(args.tasks))
    llm = Llama(model_path=args.model, n_ctx=4096, n_batch=512, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    stops = ["<|im_end|>", "<|endoftext|>"]

    def complete(prompt, max_tokens):
        out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, top_p=1.0,
                                    repeat_penalty=1.0, stop=stops)
        return out["choices"][0]["text"], out["usage"]

    secs, texts, tokens = [], [], 0
    for rep in range(args.reps + 1):  # the first round is a warm-up (unless --reps 0: one round, measured)
        llm.reset()
        t0 = time.perf_counter()
        written, generated, rationale_tokens = [], 0, 0
        for task in tasks:
            rationale, usage = complete(chatml(task["messages"]), args.max_tokens)
            generated += usage["completion_tokens"]
            rationale_tokens += usage["completion_tokens"]
            conversation = task["messages"] + [{"role": "assistant", "content": rationale.strip()},
                                               {"role": "user", "content": task["question"]}]
            verdict, usage = complete(chatml(conversation), args.verdict_tokens)
            generated += usage["completion_tokens"]
            written.append({"rationale": rationale.strip(), "verdict": verdict.strip()})
        if rep > 0 or args.reps == 0:
            secs.append(time.perf_counter() - t0)
        texts, tokens, in_rationales = written, generated, rationale_tokens
        if args.reps == 0:
            break
    print(json.dumps({
        "engine": f"llama.cpp (llama-cpp-python {__version__})",
        "threads": args.threads,
        "item_secs": statistics.median(secs),
        "generated_tokens": tokens,
        "rationale_tokens": in_rationales,
        "written": texts,
    }))


if __name__ == "__main__":
    main()
