# Sourced by scripts/test, scripts/bench and scripts/generate-proto: installs the Debian packages
# named that are missing (with sudo when not root). Set `installer` to the caller's name for its
# message first.
install_debian_packages() {
    local missing=()
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "${installer:-scripts}: installing ${missing[*]}" >&2
    # The first apt-get of a run can fail transiently here: retry once.
    $sudo apt-get update -qq || { sleep 5; $sudo apt-get update -qq; }
    # A run stopped while dpkg was configuring leaves it "interrupted", and every apt-get install
    # refuses until this is done (nothing happens when nothing is pending).
    DEBIAN_FRONTEND=noninteractive $sudo dpkg --configure -a >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
        || { sleep 5; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }
}
