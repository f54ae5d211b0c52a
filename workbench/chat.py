"""``python -m workbench.chat PATH [--max-new-tokens N] [--temperature T] [--system TEXT]``: chat in the terminal
with the LLM in the GGUF file ``PATH`` (answers streamed as they are generated; an empty line or Ctrl-D ends)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a GGUF file, e.g. SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--system", default=None, help="a system message")
    parser.add_argument("--activations", choices=("float32", "int8"), default="float32",
                        help="int8: decode steps with llama.cpp's 8-bit activations (faster, logits within ~1 %%)")
    args = parser.parse_args(argv)

    from .frontend.errors import ModelFileError
    from .frontend.llm import load_llm

    try:
        llm = load_llm(args.path, activations=args.activations)
    except ModelFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{llm!r}\ncompiling (first use only)...", file=sys.stderr)
    llm.vm
    messages = [{"role": "system", "content": args.system}] if args.system else []
    while True:
        try:
            line = input("> ").strip()
        except EOFError:
            break
        if not line:
            break
        messages.append({"role": "user", "content": line})
        answer = []
        try:
            for piece in llm.chat(messages, stream=True, max_new_tokens=args.max_new_tokens,
                                  temperature=args.temperature, top_p=args.top_p):
                answer.append(piece)
                print(piece, end="", flush=True)
        except ValueError as e:   # the conversation outgrew the context limit, a bad option
            print(f"\nerror: {e}", file=sys.stderr)
            messages.pop()
            continue
        stats = llm.stats
        print(f"\n[{stats.get('generated_tokens', 0)} tokens, "
              f"{stats.get('decode_tokens_per_s', 0.0):.1f} tokens/s]", file=sys.stderr)
        messages.append({"role": "assistant", "content": "".join(answer)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
