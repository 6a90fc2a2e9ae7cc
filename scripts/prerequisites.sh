# Shared by scripts/test and scripts/demo: install what a fresh Debian 12
# machine lacks to build pgcache and run PostgreSQL 15 as the postgres user.
# Source it, then call ensure_prerequisites. apt-get runs only when something
# is missing.

heading() {
    printf '\n==> %s\n' "$*"
}

ensure_prerequisites() {
    PG_BIN_DIR=/usr/lib/postgresql/15/bin
    PG_TOOLS=(initdb pg_ctl postgres psql pgbench)
    
    # ---------------------------------------------------------------------------
    heading "Checking system packages"
    
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        as_root=()
    fi
    
    missing=()
    command -v sudo >/dev/null 2>&1 || missing+=(sudo)
    dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
    
    pg_on_path() {
        local tool
        for tool in "${PG_TOOLS[@]}"; do
            command -v "$tool" >/dev/null 2>&1 || return 1
        done
    }
    if [[ -d $PG_BIN_DIR ]]; then
        export PATH="$PATH:$PG_BIN_DIR"
    fi
    if ! pg_on_path; then
        missing+=(postgresql-15 postgresql-client-15)
    fi
    
    if ((${#missing[@]} > 0)); then
        if [[ $(id -u) -ne 0 && ${#as_root[@]} -eq 0 ]]; then
            echo "error: missing packages (${missing[*]}) and neither root nor sudo is available to install them" >&2
            exit 1
        fi
        heading "Installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        "${as_root[@]}" apt-get update -qq
        "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
        if [[ -d $PG_BIN_DIR && :$PATH: != *:$PG_BIN_DIR:* ]]; then
            export PATH="$PATH:$PG_BIN_DIR"
        fi
        hash -r
        if ! pg_on_path; then
            echo "error: PostgreSQL tools (${PG_TOOLS[*]}) still not found after installing" >&2
            exit 1
        fi
    else
        echo "all present: sudo, libclang-dev, PostgreSQL 15 (${PG_TOOLS[*]})"
    fi
    
    # As root, the tests start PostgreSQL with `sudo -u postgres initdb|postgres`.
    # sudo searches only its secure_path, which lacks the PostgreSQL bin directory
    # that Debian's packages use, so link the server tools into /usr/local/bin.
    if [[ $(id -u) -eq 0 ]]; then
        for tool in initdb pg_ctl postgres; do
            if ! sudo -u postgres sh -c "command -v $tool" >/dev/null 2>&1; then
                target=$(command -v "$tool")
                ln -sf "$target" "/usr/local/bin/$tool"
                echo "linked /usr/local/bin/$tool -> $target"
            fi
        done
    fi
    
    echo "$(postgres --version); $(pgbench --version)"
}
