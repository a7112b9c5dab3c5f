#!/usr/bin/env bash
# Rebuilds the web app's vendored bundle from the pinned npm packages in package-lock.json:
# ../web/vendor/vendor.js (CodeMirror 6 + lang-sql + uPlot, one minified ES module),
# ../web/vendor/uPlot.min.css and ../web/vendor/LICENSES.txt. Deterministic: the same lock file
# gives the same bytes, so .ci/run rebuilds and fails when the committed files differ.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")"
if ! cmp -s package-lock.json node_modules/.strata-package-lock.json 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.strata-package-lock.json
fi
out=../web/vendor
mkdir -p "$out"
node_modules/.bin/esbuild entry.js --bundle --format=esm --minify --legal-comments=none \
  --target=es2020 --outfile="$out/vendor.js" --log-level=warning
cp node_modules/uplot/dist/uPlot.min.css "$out/uPlot.min.css"
{
  echo "Third-party code in vendor.js and uPlot.min.css, with its licenses."
  for dir in $(cd node_modules && ls -d @*/* [!@.]* | grep -v '^esbuild$' | sort); do
    [ -f "node_modules/$dir/package.json" ] || continue
    version=$(node -p "require('./node_modules/$dir/package.json').version")
    license=$(ls "node_modules/$dir" | grep -i -m1 '^licen[cs]e' || true)
    [ -n "$license" ] || continue
    printf '\n==== %s %s ====\n\n' "$dir" "$version"
    cat "node_modules/$dir/$license"
  done
} > "$out/LICENSES.txt"
