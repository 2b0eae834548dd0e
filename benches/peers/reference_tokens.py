"""Writes llama.cpp's tokenisation (llama-cpp-python, vocab only) of the texts of tests/data/smollm2_tokens.json for
another GGUF:  .venv-llama/bin/python benches/peers/reference_tokens.py models/gemma-3-270m-q4_k_m.gguf tests/data/gemma3_tokens.json
"""
import json, os, sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False, vocab_only=True)
texts = json.load(open('/work/main/tests/data/smollm2_tokens.json'))['cases']
out = [{"text": c["text"], "ids": llm.tokenize(c["text"].encode(), add_bos=False, special=True)} for c in texts]
json.dump({"model": os.path.basename(sys.argv[1]), "engine": "llama-cpp-python 0.3.36", "cases": out}, open(sys.argv[2], "w"), indent=1, ensure_ascii=False)
