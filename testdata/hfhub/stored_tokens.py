"""Reads or writes a stored_tokens file the way huggingface_hub does
(utils/_auth.py: configparser with interpolation off; sections written
sorted by name), for the Go tests that check both agree.

    python3 stored_tokens.py read PATH          prints [[name, [[key, value], ...]], ...] as JSON,
                                                 or {"error": "..."} where huggingface_hub reads nothing
    python3 stored_tokens.py read-all PATH...   prints a JSON list of those, one per file
    python3 stored_tokens.py write PATH < JSON  writes that list as huggingface_hub would
"""

import configparser
import json
import sys


def parse(path):
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
        return [[name, [[k, v] for k, v in parser.items(name)]] for name in parser.sections()]
    except configparser.Error as e:
        return {"error": type(e).__name__}


def read(path):
    json.dump(parse(path), sys.stdout)


def read_all(*paths):
    json.dump([parse(p) for p in paths], sys.stdout)


def write(path):
    sections = json.load(sys.stdin)
    parser = configparser.ConfigParser(interpolation=None)
    for name, fields in sorted(sections, key=lambda s: s[0]):
        parser.add_section(name)
        for key, value in fields:
            parser.set(name, key, value)
    with open(path, "w") as f:
        parser.write(f)


if __name__ == "__main__":
    {"read": read, "read-all": read_all, "write": write}[sys.argv[1]](*sys.argv[2:])
