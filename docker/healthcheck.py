"""Docker's health check: GET /readyz of the bot's health server (slim images have no curl).

/readyz, not /healthz: a bot whose database takes no writes, whose Redis is gone or whose
watch or notice delivery is stuck is alive but not doing its job, and must show unhealthy.
Exits 0 when the server answers 200, 1 otherwise (the failing checks go to stderr, which
`docker inspect` shows); 0 when HEALTH_PORT is not set, because then there is nothing to
ask and a container must not be marked unhealthy for it.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("HEALTH_PORT", "").strip()
    if not port:
        return 0
    host = os.environ.get("HEALTH_HOST", "").strip()
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:  # 503: the body names the failing checks
        print(f"readyz: {exc.code} {exc.read(2000).decode(errors='replace')}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"readyz: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
