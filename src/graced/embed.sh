#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Makes a C file of text files, each a NUL-terminated string, for graced's
# page (page.c): embed.sh NAME FILE [NAME FILE]... > page_assets.c
# declares  const char NAME[];  with FILE's bytes (its lines, backslashes
# and quotes escaped). Run by make; the files are src/graced/page.js and
# page.css.
set -eu
echo "/* SPDX-License-Identifier: BSD-3-Clause */"
echo "/* made by src/graced/embed.sh: do not edit; edit the files it names */"
while [ $# -ge 2 ]; do
    name=$1
    file=$2
    shift 2
    echo "/* $(basename "$file") */"
    echo "const char $name[] ="
    # ?? is escaped: a C compiler in ISO mode reads trigraphs
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/??/?\\?/g' -e 's/^/    "/' -e 's/$/\\n"/' "$file"
    echo "    ;"
done
