#!/usr/bin/env python3
"""log_msg() skips its arguments below the log level (include/coap2mqtt/log.h): anything
with an effect written inside them happens only at some levels. This check fails on any
assignment, increment or call of a function that is not known to be free of effects inside
the arguments of a log_msg() in src/."""
import os
import re
import sys

# Functions that only read and return: safe to skip.
PURE = {
    "strlen", "strerror", "gai_strerror", "strsignal", "log_redact", "coap_session_str",
    "json_object_get_string", "json_object_to_json_string_ext", "MQTTAsync_strerror",
    "sizeof", "strchr", "coap_response_phrase", "coap_pdu_get_mid", "coap_pdu_get_type",
    "coap_pdu_get_code", "scheme", "spool_depth", "spool_inflight", "spool_bytes", "north_lost_writes",
}


def calls(src, start):
    """The text of the argument list of the call whose '(' is at start."""
    depth, i, in_str = 0, start, None
    while i < len(src):
        c = src[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == in_str:
                in_str = None
        elif c in "\"'":
            in_str = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return src[start + 1:i]
        i += 1
    return src[start + 1:]


def strip_strings(text):
    return re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'', '""', text)


def problems(path):
    src = open(path).read()
    for m in re.finditer(r"\blog_msg(?:_limited)?\s*\(", src):
        args = strip_strings(calls(src, m.end() - 1))
        line = src.count("\n", 0, m.start()) + 1
        if re.search(r"\+\+|--", args):
            yield line, "increment or decrement"
        if re.search(r"(?<![=!<>])=(?!=)", args):
            yield line, "assignment"
        for f in re.findall(r"\b([A-Za-z_]\w*)\s*\(", args):
            if f not in PURE:
                yield line, f"call of {f}() (add it to PURE in {os.path.basename(__file__)} "\
                            "only if it has no effect)"


def self_test():
    """The check must see the bug it exists for (south_observe.c before the fix)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "src"))
        with open(os.path.join(d, "src", "bad.c"), "w") as f:
            f.write('log_msg(LOG_DEBUG, "n=%d %s", n++, coap_resource_notify_observers(r, NULL)'
                    ' ? "yes" : "no");\nlog_msg(LOG_INFO, "x=%d", x = 1);\n'
                    'log_msg(LOG_INFO, "ok %zu \\"(\\" %s", strlen(s), "a=b()");\n')
        found = list(problems(os.path.join(d, "src", "bad.c")))
    want = [(1, "increment or decrement"), (2, "assignment")]
    assert all(w in found for w in want), found
    assert any(l == 1 and "coap_resource_notify_observers" in w for l, w in found), found
    assert not any(l == 3 for l, _ in found), found
    print("log-args: self-test passed")


def main():
    self_test()
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    bad = 0
    for d in ("src", "tools"):
        top = os.path.join(root, d)
        for name in sorted(os.listdir(top)) if os.path.isdir(top) else []:
            if name.endswith(".c"):
                for line, what in problems(os.path.join(top, name)):
                    print(f"{d}/{name}:{line}: {what} inside log_msg() arguments")
                    bad += 1
    print(f"log-args: {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
