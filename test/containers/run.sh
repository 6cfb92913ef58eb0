#!/usr/bin/env bash
# The container test (`npm run test:containers`; .ci/run runs it after the main suite). As root, with
# Debian's rootful podman and podman-compose, configured as shared/CONTAINERS.md tells:
#
#   1. a base image without any registry: debootstrap + this machine's Node (localhost/node:20-bookworm,
#      kept for the next run);
#   2. the project's Dockerfile built on it (--network=host: npm ci reaches the registry), then the image
#      checked: non-root, no build tools, no dev dependencies; `sdfs name` and `sdfs storage` stop at once
#      on SIGTERM;
#   3. compose.yml brought up on an internal network (test/containers/compose.test.yml): a name server
#      and three storage servers that find it by broadcast;
#   4. from a client container: a 5 MiB file put in 1 MiB blocks at 2 replicas and got back with the same
#      sha256; the same through the name server's HTTP content route from the host, both ways;
#   5. the storage container that holds the most replicas stopped: every block back at 2 replicas on
#      the live servers, and the file still reads the same;
#   6. everything torn down, and checked: no container, network or volume of the test left, iptables and
#      nftables as they were, net.ipv4.ip_forward as it was.
#
# No container ever has a route out of this machine: every container runs on an internal network (or
# none), and ip_forward, which netavark turns on, is set back to 0 after each container start. The
# images stay (localhost/node:20-bookworm, localhost/sdfs, localhost/sdfs-build): a rerun reuses their
# layers, and replaces those of the run before.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

PROJECT=sdfsctest                     # podman-compose project: its containers, volumes and network
NET=${PROJECT}_default                # the compose file's default network, made here (internal, our subnet)
SUBNET=10.231.7.0/24                  # a private range used by nothing else here
CLIENT=${PROJECT}_client              # the client container
BASE_IMAGE=localhost/node:20-bookworm
IMAGE=localhost/sdfs:latest           # what compose.yml's `image: sdfs` resolves to
BUILD_IMAGE=localhost/sdfs-build:latest  # the Dockerfile's build stage, kept as the cache of the next run
COMPOSE=(podman-compose -p "$PROJECT" -f "$ROOT/compose.yml" -f "$ROOT/test/containers/compose.test.yml")
FILE_SIZE=$((5 * 1024 * 1024))

T0=$(date +%s)
step() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
fail() { echo "test:containers: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (rootful podman)"
for c in podman podman-compose debootstrap runc iptables-save node; do
  command -v "$c" >/dev/null || fail "$c is missing (apt-get install podman runc podman-compose debootstrap)"
done

WORK=$(mktemp -d /tmp/sdfs-containers.XXXXXX)
chmod 755 "$WORK"
LOG=$WORK/log
# A private podman configuration (nothing under /etc changes): runc, no systemd, a file events log, an
# open-files limit root may set, and no network for a container unless it is given one.
cat >"$WORK/containers.conf" <<'EOF'
[containers]
netns = "none"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
export CONTAINERS_CONF=$WORK/containers.conf

# What the machine had before: restored or compared at the end.
FORWARD=/proc/sys/net/ipv4/ip_forward
FORWARD_BEFORE=$(cat $FORWARD)
rules() { { if command -v nft >/dev/null; then nft list ruleset; else iptables-save; ip6tables-save; fi; } 2>/dev/null | grep -v '^#' || true; }
RULES_BEFORE=$(rules)
NFT_TABLES_BEFORE=$(nft list tables 2>/dev/null || true)
NETAVARK_BEFORE=$( { iptables-save; ip6tables-save; } 2>/dev/null | grep -c NETAVARK || true)
aardvarks() { cat /proc/[0-9]*/comm 2>/dev/null | grep -cx aardvark-dns || true; }
AARDVARKS_BEFORE=$(aardvarks)
CONTAINERS_BEFORE=$(podman ps -aq | sort)
NETWORKS_BEFORE=$(podman network ls -q | sort)
VOLUMES_BEFORE=$(podman volume ls -q | sort)

noforward() { echo 0 >$FORWARD; }
# has_log CONTAINER TEXT (grep reads it all: no SIGPIPE for podman under pipefail)
has_log() { podman logs "$1" 2>&1 | grep -F -- "$2" >/dev/null; }

# Removes netavark's iptables rules and chains, when there were none before the test (another user's
# podman networks keep theirs), and the tables iptables-nft made for them when they were not there.
drop_netavark_rules() {
  [ "$NETAVARK_BEFORE" = 0 ] || return 0
  local ipt table rule chain
  for ipt in iptables ip6tables; do
    for table in filter nat mangle; do
      "$ipt-save" -t "$table" >/dev/null 2>&1 || continue
      "$ipt-save" -t "$table" | grep -E '^-A [A-Z]+ .*-j NETAVARK' | sed 's/^-A /-D /' | while read -r rule; do
        eval "$ipt -t $table $rule" || true
      done
      for chain in $("$ipt-save" -t "$table" | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do "$ipt" -t "$table" -F "$chain" || true; done
      for chain in $("$ipt-save" -t "$table" | sed -n 's/^:\(NETAVARK[^ ]*\) .*/\1/p'); do "$ipt" -t "$table" -X "$chain" || true; done
    done
  done
  command -v nft >/dev/null || return 0
  local t
  while read -r t; do
    [ -n "$t" ] || continue
    grep -qxF "$t" <<<"$NFT_TABLES_BEFORE" && continue
    # only a table left empty of rules
    nft list $t | grep -vE '^\s*(table |chain |type |policy |\}|$)' >/dev/null && continue
    nft delete $t || true
  done <<<"$(nft list tables)"
}

TORN_DOWN=0
teardown() {
  [ "$TORN_DOWN" = 0 ] || return 0
  TORN_DOWN=1
  set +e
  "${COMPOSE[@]}" down -v >>"$LOG" 2>&1
  local c
  for c in "$CLIENT" sdfsctest_sigterm $(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT"); do
    podman container exists "$c" && podman rm -f -v -t 0 "$c" >>"$LOG" 2>&1
  done
  podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" | xargs -r podman volume rm -f >>"$LOG" 2>&1
  podman network exists "$NET" && podman network rm -f "$NET" >>"$LOG" 2>&1
  drop_netavark_rules >>"$LOG" 2>&1
  echo "$FORWARD_BEFORE" >$FORWARD
  set -e
}
on_exit() {
  local rc=$? c
  if [ "$rc" != 0 ]; then
    for c in $(podman ps -a --format '{{.Names}}' --filter "label=io.podman.compose.project=$PROJECT"); do
      echo "--- podman logs $c" >>"$LOG"
      podman logs --tail 30 "$c" >>"$LOG" 2>&1
    done
    echo "test:containers: failed after $(( $(date +%s) - T0 )) s; the last lines of $LOG:" >&2
    tail -n 60 "$LOG" >&2
  fi
  teardown
  [ "$rc" != 0 ] || rm -rf "$WORK"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- 1. the base image --------------------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
  step "base image $BASE_IMAGE: kept from an earlier run"
else
  step "base image $BASE_IMAGE: debootstrap + this machine's Node"
  node_bin=$(readlink -f "$(command -v node)")
  node_prefix=$(dirname "$(dirname "$node_bin")")
  npm_dir=$(readlink -f "$(npm root -g)/npm")
  "$node_bin" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a === 20 && b >= 19 ? 0 : 1)' \
    || fail "this machine's node is $("$node_bin" --version); the base image needs Node 20.19 or later 20.x"
  rootfs=$WORK/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" >>"$LOG" 2>&1 || fail "debootstrap failed"
  install -m 755 "$node_bin" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/include" "$rootfs/etc/ssl/certs"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # Node's headers, for node-gyp (better-sqlite3) to find without a download.
  [ -f "$node_prefix/include/node/node.h" ] && cp -a "$node_prefix/include/node" "$rootfs/usr/local/include/node"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV NPM_CONFIG_CAFILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' - "$BASE_IMAGE" >>"$LOG" 2>&1 || fail "podman import failed"
  rm -rf "$rootfs"
fi

# --- 2. the image -------------------------------------------------------------------------------
step "podman build (BASE=$BASE_IMAGE) -> $IMAGE"
b0=$(date +%s)
image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
superseded="$(image_id "$IMAGE") $(image_id "$BUILD_IMAGE")"
# The build stage first, tagged, so that removing the images of the previous run keeps the layers this
# one shares with it (the dependencies, better-sqlite3 compiled); then the image, whose build stage is
# all in the cache by then.
podman build --network=host --build-arg "BASE=$BASE_IMAGE" --target build -t "$BUILD_IMAGE" . >>"$LOG" 2>&1 || fail "podman build --target build failed"
podman build --network=host --build-arg "BASE=$BASE_IMAGE" -t "$IMAGE" . >>"$LOG" 2>&1 || fail "podman build failed"
current="$(image_id "$IMAGE") $(image_id "$BUILD_IMAGE")"
for id in $superseded; do
  grep -qw "$id" <<<"$current" || podman rmi "$id" >>"$LOG" 2>&1 || true
done
step "built in $(( $(date +%s) - b0 )) s; image $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || fail "the image runs as '$user', not a non-root user"
# shellcheck disable=SC2016
inside=$(podman run --rm --network=none "$IMAGE" sh -c '
  id -u
  for t in gcc g++ cc make python3; do command -v "$t" >/dev/null && echo "tool:$t"; done
  for d in typescript vite tsx playwright-core preact @types/node esbuild; do [ -e "/app/node_modules/$d" ] && echo "dev:$d"; done
  sdfs --version
  node -e "require(\"/app/node_modules/better-sqlite3\")(\":memory:\").prepare(\"select 1\").get(); console.log(\"sqlite:ok\")"
  ls /app/dist/web/index.html')
uid=$(sed -n 1p <<<"$inside")
[ "$uid" != 0 ] || fail "the container runs as root"
! grep -q '^tool:' <<<"$inside" || fail "build tools in the final image: $(grep '^tool:' <<<"$inside" | tr '\n' ' ')"
! grep -q '^dev:' <<<"$inside" || fail "dev dependencies in the final image: $(grep '^dev:' <<<"$inside" | tr '\n' ' ')"
grep -q '^sqlite:ok$' <<<"$inside" || fail "better-sqlite3 does not load in the image: $inside"
grep -q '/app/dist/web/index.html' <<<"$inside" || fail "no web UI in the image"
step "image: user $user (uid $uid), no build tools, no dev dependencies, sdfs $(sed -n 2p <<<"$inside" | grep -v '^tool\|^dev' || true)"

# Node is PID 1: each server role must stop cleanly and at once on SIGTERM (podman stop sends it).
# stop_time NAME: stops the container, prints "MS EXITCODE", removes it.
stop_time() {
  local s0 ms code
  s0=$(date +%s%N)
  podman stop -t 10 "$1" >>"$LOG" 2>&1
  ms=$(( ($(date +%s%N) - s0) / 1000000 ))
  code=$(podman inspect --format '{{.State.ExitCode}}' "$1")
  podman rm -f -v -t 0 "$1" >>"$LOG" 2>&1
  echo "$ms $code"
}
SECRET=sdfs-container-test-secret-0123456789abcdef
for role in name storage; do
  # (a storage server with no name server given waits for a broadcast; the secret is ignored by a name server)
  podman run -d --name sdfsctest_sigterm --network=none -e "SDFS_SECRET=$SECRET" "$IMAGE" sdfs "$role" >>"$LOG"
  for _ in $(seq 50); do has_log sdfsctest_sigterm '"event":"listening"' && break; sleep 0.2; done
  has_log sdfsctest_sigterm '"event":"listening"' || fail "sdfs $role did not start: $(podman logs sdfsctest_sigterm 2>&1 | tail -5)"
  has_log sdfsctest_sigterm '"dataDir":"/data"' || fail "sdfs $role does not keep its data in /data: $(podman logs sdfsctest_sigterm 2>&1 | tail -5)"
  read -r ms code < <(stop_time sdfsctest_sigterm)
  [ "$code" = 0 ] || fail "sdfs $role exited $code on SIGTERM (not 0)"
  [ "$ms" -lt 3000 ] || fail "sdfs $role took $ms ms to stop on SIGTERM"
  step "sdfs $role as PID 1: stopped by SIGTERM in $ms ms, exit code 0"
done
# A storage server still waiting for its secret file (compose: before the name server made it).
podman run -d --name sdfsctest_sigterm --network=none -e SDFS_SECRET_FILE=/data/none "$IMAGE" sdfs storage >>"$LOG"
sleep 2
read -r ms code < <(stop_time sdfsctest_sigterm)
[ "$code" = 0 ] || fail "sdfs storage waiting for its secret file exited $code on SIGTERM (not 0)"
[ "$ms" -lt 3000 ] || fail "sdfs storage waiting for its secret file took $ms ms to stop on SIGTERM"
step "sdfs storage waiting for its secret file: stopped by SIGTERM in $ms ms, exit code 0"

# --- 3. the cluster -----------------------------------------------------------------------------
# podman-compose 1.0.3 cannot give a network a subnet: the network is made here, with the name and
# labels podman-compose looks for, and compose uses it.
step "compose up: name server + 3 storage servers on internal network $NET ($SUBNET)"
podman network create --internal --subnet "$SUBNET" \
  --label "io.podman.compose.project=$PROJECT" --label "com.docker.compose.project=$PROJECT" "$NET" >>"$LOG"
noforward
"${COMPOSE[@]}" up -d >>"$LOG" 2>&1 || fail "podman-compose up failed"
noforward
[ "$(podman ps -q --filter "label=io.podman.compose.project=$PROJECT" | wc -l)" = 4 ] || fail "not 4 containers running: $(podman ps -a)"
for c in $(podman ps -q --filter "label=io.podman.compose.project=$PROJECT"); do
  routes=$(podman exec "$c" cat /proc/net/route | awk 'NR > 1 && $2 == "00000000"')
  [ -z "$routes" ] || fail "container $c has a default route"
done

# The client: the same image, the shell's subcommands, a host folder for the files. It is given the name
# server's address, not its name: the bridge of netavark 1.4 takes the lowest MAC address of its ports,
# so stopping a container can change it, and the containers' DNS server (aardvark-dns, at the bridge's
# address) is then out of reach until their ARP entries expire (tens of seconds).
NAME_IP=$(podman inspect --format "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "${PROJECT}_name_1")
chmod 777 "$WORK"
podman run -d --name "$CLIENT" --network "$NET" --label "io.podman.compose.project=$PROJECT" \
  -e "SDFS_NAME_SERVER=http://$NAME_IP:6235" -v "$WORK:/work" -w /work "$IMAGE" sleep infinity >>"$LOG"
noforward
sdfs() { podman exec "$CLIENT" sdfs "$@"; }

# Storage servers join when they hear the name server's broadcast (every 5 s).
alive() { sdfs status --json 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).storages.filter(x=>x.alive).length)}catch{console.log(0)}})'; }
for _ in $(seq 60); do [ "$(alive)" = 3 ] && break; sleep 1; done
[ "$(alive)" = 3 ] || fail "3 storage servers did not join by broadcast: $(sdfs status 2>&1)"
step "3 storage servers joined the name server by broadcast"

# --- 4. put and get -----------------------------------------------------------------------------
head -c "$FILE_SIZE" /dev/urandom >"$WORK/in.bin"
chmod 644 "$WORK/in.bin"
SUM=$(sha256sum <"$WORK/in.bin" | cut -d' ' -f1)
sdfs put /work/in.bin /big.bin -r 2 -b 1M >>"$LOG"
sdfs get /big.bin /work/out.bin >>"$LOG"
[ "$(sha256sum <"$WORK/out.bin" | cut -d' ' -f1)" = "$SUM" ] || fail "the file got back differs from the one put"
http_sum=$(node -e '
  const h = require("node:crypto").createHash("sha256");
  fetch(process.argv[1]).then(async (r) => { if (!r.ok) throw new Error(String(r.status)); for await (const c of r.body) h.update(c); console.log(h.digest("hex")); })
    .catch((e) => { console.error(e.message); process.exit(1); });' "http://$NAME_IP:6235/api/v1/fs/content?path=/big.bin")
[ "$http_sum" = "$SUM" ] || fail "the file read over HTTP from the host differs"
# ...and the other way: a file PUT over HTTP from the host, read by the client.
node -e '
  const fs = require("node:fs");
  fetch(process.argv[1], { method: "PUT", body: fs.readFileSync(process.argv[2]) })
    .then((r) => { if (!r.ok) throw new Error(`PUT: ${r.status}`); })
    .catch((e) => { console.error(e.message); process.exit(1); });' "http://$NAME_IP:6235/api/v1/fs/content?path=/up.bin" "$WORK/in.bin" \
  || fail "PUT over HTTP from the host failed"
sdfs get /up.bin /work/up.bin >>"$LOG"
[ "$(sha256sum <"$WORK/up.bin" | cut -d' ' -f1)" = "$SUM" ] || fail "the file PUT over HTTP differs when read back"
sdfs rm /up.bin >>"$LOG"
# The shell inside the name server's container (README: docker compose exec name sdfs status).
podman exec "${PROJECT}_name_1" sdfs status >>"$LOG" || fail "sdfs status in the name server's container failed"

# Each block's live replicas, as `sdfs stat --json` and `sdfs status --json` say.
replicas() {
  sdfs stat /big.bin --json >"$WORK/stat.json"
  sdfs status --json >"$WORK/status.json"
  node -e '
    const fs = require("node:fs");
    const stat = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const status = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
    const live = new Set(status.storages.filter((s) => s.alive).map((s) => s.id));
    const out = stat.blockList.map((b) => {
      const ids = new Set(b.replicas.filter((r) => r.alive && live.has(r.id) && r.id !== process.argv[3]).map((r) => r.id));
      return ids.size;
    });
    console.log(out.join(" "));' "$WORK/stat.json" "$WORK/status.json" "${1:-}"
}
before=$(replicas)
[ "$before" = "2 2 2 2 2" ] || fail "blocks are not 5 at 2 live replicas: $before"
step "put and got a 5 MiB file in 5 blocks, 2 replicas each ($before), same sha256 in the client and over HTTP from the host (GET and PUT)"

# --- 5. one storage server stopped, the cluster repairs itself ----------------------------------
# The storage container that holds the most replicas of the file.
storage_id() { podman logs "$1" 2>/dev/null | sed -n 's/.*"event":"listening","role":"storage","id":"\([^"]*\)".*/\1/p' | head -1; }
held=-1
for c in "${PROJECT}_storage1_1" "${PROJECT}_storage2_1" "${PROJECT}_storage3_1"; do
  id=$(storage_id "$c")
  [ -n "$id" ] || fail "no storage id in the logs of $c"
  # (a server may hold none of the file's replicas: grep finds nothing, which is no error here)
  n=$( (grep -o "\"$id\"" "$WORK/stat.json" || true) | wc -l)
  if [ "$n" -gt "$held" ]; then victim=$c; victim_id=$id; held=$n; fi
done
s0=$(date +%s%N)
podman stop -t 10 "$victim" >>"$LOG"
ms=$(( ($(date +%s%N) - s0) / 1000000 ))
[ "$(podman inspect --format '{{.State.ExitCode}}' "$victim")" = 0 ] || fail "$victim did not exit 0 on SIGTERM"
step "stopped $victim (storage ${victim_id:0:8}, $held of the 10 replicas) in $ms ms"
r0=$(date +%s)
for _ in $(seq 120); do
  now=$(replicas "$victim_id" 2>>"$LOG") || now="(no answer)"
  [ "$now" = "2 2 2 2 2" ] && sdfs fsck >>"$LOG" 2>&1 && break
  sleep 1
done
[ "$now" = "2 2 2 2 2" ] || fail "blocks not back at 2 live replicas after 120 s: $now"
sdfs fsck >>"$LOG" 2>&1 || fail "sdfs fsck exits $? after the repair"
rm -f "$WORK/out.bin"
sdfs get /big.bin /work/out.bin >>"$LOG"
[ "$(sha256sum <"$WORK/out.bin" | cut -d' ' -f1)" = "$SUM" ] || fail "the file got back after the repair differs"
step "repaired $(( $(date +%s) - r0 )) s after the stop: every block at 2 replicas on the 2 live servers ($now), fsck healthy, same sha256"

# --- 6. teardown --------------------------------------------------------------------------------
step "teardown"
d0=$(date +%s)
teardown
step "torn down in $(( $(date +%s) - d0 )) s"
[ -z "$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT")" ] || fail "containers left: $(podman ps -a)"
[ "$(podman ps -aq | sort)" = "$CONTAINERS_BEFORE" ] || fail "containers differ from before: $(podman ps -a)"
[ "$(podman network ls -q | sort)" = "$NETWORKS_BEFORE" ] || fail "networks differ from before: $(podman network ls -q | tr '\n' ' ')"
[ "$(podman volume ls -q | sort)" = "$VOLUMES_BEFORE" ] || fail "volumes differ from before: $(podman volume ls -q | tr '\n' ' ')"
# (aardvark-dns, the networks' DNS server, exits on its own a moment after its last container)
for _ in $(seq 20); do [ "$(aardvarks)" = "$AARDVARKS_BEFORE" ] && break; sleep 0.5; done
[ "$(aardvarks)" = "$AARDVARKS_BEFORE" ] || fail "aardvark-dns processes: $(aardvarks), $AARDVARKS_BEFORE before"
[ "$(cat $FORWARD)" = "$FORWARD_BEFORE" ] || fail "net.ipv4.ip_forward is $(cat $FORWARD), was $FORWARD_BEFORE"
if [ "$(rules)" != "$RULES_BEFORE" ]; then
  diff <(echo "$RULES_BEFORE") <(rules) >&2 || true
  fail "the firewall rules (nftables/iptables) differ from before the test"
fi
step "nothing left: no container, network or volume of the test; firewall rules as before; ip_forward $FORWARD_BEFORE as before"
echo "test:containers: passed in $(( $(date +%s) - T0 )) s"
