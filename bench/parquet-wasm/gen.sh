#!/usr/bin/env bash
# gen.sh CODEC: src/writer.rs = the CLI's parquet.rs with CODEC instead of zstd.
set -euo pipefail
cd "$(dirname "$0")"
src=../../cli/src/parquet.rs
case "$1" in
  zstd) cp "$src" src/writer.rs ;;
  snappy) sed 's/Compression::ZSTD(level)/Compression::SNAPPY/' "$src" > src/writer.rs ;;
  lz4) sed 's/Compression::ZSTD(level)/Compression::LZ4_RAW/' "$src" > src/writer.rs ;;
  none) sed 's/Compression::ZSTD(level)/Compression::UNCOMPRESSED/' "$src" > src/writer.rs ;;
esac
# The zstd level is only used by ZSTD.
[ "$1" = zstd ] || sed -i 's/let level = ZstdLevel::try_new(ZSTD_LEVEL).context("zstd level")?;/let _ = (ZSTD_LEVEL, ZstdLevel::try_new(1));/' src/writer.rs
