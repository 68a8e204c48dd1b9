# Sourced by scripts/bench and scripts/postgres-pair.
#
# free_loopback_port [COUNT]: prints a loopback port P such that nothing listens on P..P+COUNT-1
# (COUNT defaults to 1), picked at random below the kernel's ephemeral range: port-0 listeners and
# outgoing connections take their ports from that range, and a random pick inside it once met a
# listener of the same bench run. The check is a connect, so a port taken between it and the
# caller's bind still fails there.
free_loopback_port() {
    local count="${1:-1}" low=20000 high
    high=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)
    for _ in $(seq 1 50); do
        local port=$((low + RANDOM % (high - low - count))) offset taken=0
        for ((offset = 0; offset < count; offset++)); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$((port + offset))") 2>/dev/null; then taken=1; break; fi
        done
        [ "$taken" -eq 0 ] && { echo "$port"; return 0; }
    done
    echo "no free loopback port found below $high" >&2
    return 1
}
