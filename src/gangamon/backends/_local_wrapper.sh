#!/bin/sh
# gangamon's local job wrapper. $1: the job directory; the rest: the command to run.
# Records start and exit atomically (write, then rename) so that a reader never sees half a
# record, and exits with the command's code. A command killed by signal N exits 128+N.
dir=$1
shift
printf '{"pid": %s, "start": %s}\n' "$$" "$(date +%s.%N)" > "$dir/.start.tmp" \
    && mv "$dir/.start.tmp" "$dir/start.json"
"$@" > "$dir/stdout" 2> "$dir/stderr" < /dev/null
code=$?
printf '{"code": %s, "end": %s}\n' "$code" "$(date +%s.%N)" > "$dir/.exit.tmp" \
    && mv "$dir/.exit.tmp" "$dir/exit.json"
exit "$code"
