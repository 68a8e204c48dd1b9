#!/usr/bin/env python3
"""Writes a man page (roff, man(7) macros) for a swift-argument-parser tool from its
`--experimental-dump-help` JSON on stdin: NAME, SYNOPSIS, DESCRIPTION (abstract and discussion),
OPTIONS, and one section per subcommand, nested. Used by deploy/install.sh.

    TOOL --experimental-dump-help | deploy/manpage.py TOOL SECTION > TOOL.SECTION
"""
import json
import sys


def escape(text):
    """Text safe in roff: backslashes doubled, leading dots and quotes neutralised."""
    text = text.replace("\\", "\\e")
    lines = []
    for line in text.split("\n"):
        if line.startswith(".") or line.startswith("'"):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def names(argument):
    out = []
    for name in argument.get("names", []):
        out.append(("-" if name["kind"] == "short" else "--") + name["name"])
    return ", ".join(out)


def argument_lines(arguments):
    lines = []
    for argument in arguments:
        if not argument.get("shouldDisplay", True):
            continue
        if argument["kind"] == "positional":
            label = "<" + argument.get("valueName", "value") + ">"
        else:
            label = names(argument)
            if argument["kind"] == "option":
                label += " <" + argument.get("valueName", "value") + ">"
        lines.append(".TP")
        lines.append("\\fB" + escape(label) + "\\fR")
        text = argument.get("abstract", "")
        if argument.get("defaultValue"):
            text += " (default: " + argument["defaultValue"] + ")"
        lines.append(escape(text))
    return lines


def shown(subcommands):
    """The subcommands a reader needs (not ArgumentParser's own `help`)."""
    return [sub for sub in subcommands if sub.get("shouldDisplay", True) and sub["commandName"] != "help"]


def command_lines(command, path, depth):
    lines = []
    for sub in shown(command.get("subcommands", [])):
        full = path + " " + sub["commandName"]
        lines.append(".SH " + escape(full.upper()) if depth == 0 else ".SS " + escape(full))
        if sub.get("abstract"):
            lines.append(escape(sub["abstract"]))
        if sub.get("discussion"):
            lines.append(".PP")
            lines.append(escape(sub["discussion"]))
        arguments = [a for a in sub.get("arguments", []) if a.get("valueName") != "help"]
        if arguments:
            lines += argument_lines(arguments)
        lines += command_lines(sub, full, depth + 1)
    return lines


def main():
    tool, section = sys.argv[1], sys.argv[2]
    command = json.load(sys.stdin)["command"]
    lines = [
        '.TH "%s" "%s" "" "TokenLedger" "TokenLedger"' % (tool.upper(), section),
        ".SH NAME",
        escape(tool) + " \\- " + escape(command.get("abstract", "")),
        ".SH SYNOPSIS",
        "\\fB" + escape(tool) + "\\fR" + (" \\fIsubcommand\\fR" if shown(command.get("subcommands", [])) else "") + " [\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        escape(command.get("abstract", "")),
    ]
    if command.get("discussion"):
        lines += [".PP", ".nf", escape(command["discussion"]), ".fi"]
    arguments = [a for a in command.get("arguments", []) if a.get("valueName") != "help"]
    if arguments:
        lines += [".SH OPTIONS"] + argument_lines(arguments)
    lines += command_lines(command, tool, 0)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
