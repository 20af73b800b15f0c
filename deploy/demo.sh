#!/usr/bin/env bash
# The main job, from a fresh clone: installs what is missing, builds nneditd
# and nneditctl, generates the example model repository (small GPT-2, Llama
# and GPT-NeoX models in Hugging Face layouts), starts nneditd on 127.0.0.1
# with it, and shows a session through nneditctl (models, prompts, forward,
# traces, generation). Stops the daemon at the end.
#
#   deploy/demo.sh             the session above
#   deploy/demo.sh --keep      leave the daemon running afterwards (prints how to stop it)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=${1:-}

deploy/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"${NNE_JOBS:-2}" --target nneditd nneditctl fixtures

repo=$PWD/build/fixtures
addr=${NNEDIT_ADDR:-127.0.0.1:50051}
state=$(mktemp -d /tmp/nnedit-demo-XXXXXX)
build/nneditd --listen "$addr" --model-repo "$repo" --load gpt2-script \
  --ready-file "$state/ready" 2>"$state/nneditd.log" &
pid=$!
stop() {
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" && echo "nneditd stopped cleanly (exit 0)" || echo "nneditd exited $?"
  fi
}
if [[ "$keep" != "--keep" ]]; then trap stop EXIT; fi

for _ in $(seq 1 300); do
  [[ -s "$state/ready" ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$state/nneditd.log" >&2; exit 1; }
  sleep 0.1
done
[[ -s "$state/ready" ]] || { echo "nneditd did not start" >&2; cat "$state/nneditd.log" >&2; exit 1; }
export NNEDIT_ADDR=$(cat "$state/ready")

show() { echo; echo "\$ $*"; "$@"; }
show build/nneditctl health
show build/nneditctl models list
show build/nneditctl models load gpt2-script
show build/nneditctl models load llama-script
show build/nneditctl models list
show build/nneditctl modules gpt2-script
# Text in, text out: the fixtures carry a tokenizer.json, so prompts work
# wherever token ids do, and every answer shows its tokens as text.
show build/nneditctl tokenize gpt2-script "The Eiffel Tower is in"
show build/nneditctl forward gpt2-script --prompt "The Eiffel Tower is in" --top-k 5
show build/nneditctl detokenize gpt2-script 272,467,471,321,285
show build/nneditctl forward gpt2-script --tokens 31,415,926,5,27 --top-k 5
show build/nneditctl forward llama-script --tokens 1,2,3 --tokens 4,5 --pad left --top-k 5
show build/nneditctl -o json forward gpt2-script --tokens 7,8,9 --top-k 3
# A mistake gets a precise status and a non-zero exit:
show build/nneditctl forward gpt2-script --tokens 7,8,5000 || echo "(exit $?)"

# Traced forward passes: save activations anywhere, then an intervention
# graph (client/TRACE-JSON.md) that scales layer 0's residual stream and
# saves the layer-1 attention pattern's row sums (all ones) on the way.
show build/nneditctl trace gpt2-script --prompt "The cat sat on the mat" \
  --save layers.1.resid_post --save layers.0.self_attn.pattern
cat >"$state/steer.json" <<'JSON'
{"model": "gpt2-script", "top_k": 5,
 "traces": [{"name": "steered",
   "invokes": [{"tokens": [[31, 415, 926, 5, 27]]}],
   "nodes": [
     {"id": 1, "read": {"site": "layers.0.resid_post"}},
     {"id": 2, "call": {"fn": "mul", "args": [{"node": 1}, 3.0]}},
     {"id": 3, "write": {"site": "layers.0.resid_post", "value": 2}},
     {"id": 4, "read": {"site": "layers.1.self_attn.pattern"}},
     {"id": 5, "call": {"fn": "sum", "args": [{"node": 4}], "kwargs": {"dim": -1}}},
     {"id": 6, "save": {"value": 5, "name": "pattern_rowsums"}}]}]}
JSON
echo; echo "\$ cat steer.json"; cat "$state/steer.json"
show build/nneditctl trace -f "$state/steer.json" --save-dir "$state/saved"
show /usr/bin/python3 -c "import numpy; print(numpy.load('$state/saved/pattern_rowsums.npy'))"

# Generation with the KV cache, streamed as it comes: greedy, then seeded
# sampling, then with layer 0's head 1 zeroed from step 3 on (a step-ranged
# intervention, nnsight's iter[3:]).
show build/nneditctl generate gpt2-script --prompt "The Eiffel Tower is in" --max-new-tokens 12
show build/nneditctl generate llama-script --prompt "Once upon a time" --max-new-tokens 12 \
  --temperature 0.8 --top-p 0.95 --seed 7
cat >"$state/ablate.json" <<'JSON'
{"nodes": [
   {"id": 1, "constant": {"scalar": 0.0}},
   {"id": 2, "write": {"site": "layers.0.self_attn.z", "value": 1,
                       "ranges": [{"dim": -1, "start": 16, "stop": 32}]},
    "steps": {"start": 3}}]}
JSON
show build/nneditctl generate gpt2-script --prompt "The Eiffel Tower is in" --max-new-tokens 12 \
  -f "$state/ablate.json"

echo
echo "daemon log: $state/nneditd.log"
if [[ "$keep" == "--keep" ]]; then
  echo "nneditd is still running (pid $pid) on $NNEDIT_ADDR; stop it with: kill -TERM $pid"
fi
