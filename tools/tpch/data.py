"""``python -m tools.tpch.data``: generate TPC-H Parquet (and upload it to an S3 endpoint).

The generator itself is product code (:mod:`spark_conf.tpch`, used by ``wj demo``, the tools
and the tests); this is its developer command line.
"""

from __future__ import annotations

import argparse
import sys

from spark_conf.tpch import DEFAULT_BUCKET, TpchDataError, generate, upload


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate TPC-H Parquet tables (tpchgen-cli).")
    ap.add_argument("--scale", type=float, default=0.1, help="TPC-H scale factor (default 0.1)")
    ap.add_argument("--out", required=True, help="local directory (one subdirectory per table)")
    ap.add_argument("--parts", type=int, default=1, help="files per table (default 1)")
    ap.add_argument("--threads", type=int, help="tpchgen-cli threads (default: all cores)")
    ap.add_argument("--keep-string-view", action="store_true",
                    help="keep tpchgen's string_view Arrow schema (pyarrow compute can't use it)")
    ap.add_argument("--force", action="store_true", help="regenerate even if present")
    ap.add_argument("--endpoint", help="also upload to this S3 endpoint URL")
    ap.add_argument("--bucket", default=DEFAULT_BUCKET)
    ap.add_argument("--prefix", default="", help="key prefix inside the bucket (e.g. tpch/sf0.1)")
    args = ap.parse_args(argv)
    try:
        generate(args.out, args.scale, parts=args.parts, threads=args.threads,
                 plain_strings=not args.keep_string_view, force=args.force)
        if args.endpoint:
            upload(args.out, args.endpoint, args.bucket, args.prefix)
    except TpchDataError as e:
        sys.exit(f"tpch: {e}")


if __name__ == "__main__":
    main()
