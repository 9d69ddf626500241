# Sourced by the table scripts as `source common.sh KIND "$@"` (the script's own arguments).
#   $1 of the script, DATA_ROOT: the folder holding the data set's files (default ../shared/data;
#         ignored by digits, arrays and folder); the rest are overrides added to every run.
#   DATA: a data set of the README's table (default mnist): mnist, fashion_mnist, kmnist,
#         binarized_mnist, omniglot, digits, or arrays / folder (give data.path=... among the
#         overrides).
# Sets data (the name), data_args (its overrides), out=${OUT_DIR:-runs/<data>_KIND} (created),
# and run NAME OVERRIDES...: trains "${common[@]}" (the script's), the overrides and the
# script's extra ones into $out/NAME, one thread, the log in $out/NAME.log.
kind=$1
shift
root=${1:-../shared/data}
shift || true
extra=("$@")
data=${DATA:-mnist}
data_args=("data=$data")
case $data in
  digits|arrays|folder) ;;  # digits are embedded; arrays and folder take data.path=...
  *) data_args+=("data.root=$root") ;;
esac
out=${OUT_DIR:-runs/${data}_${kind}}
mkdir -p "$out"
run() {  # name, overrides...
  local name=$1; shift
  OMP_NUM_THREADS=1 pyro-mvae train "${common[@]}" "run_dir=$out/$name" "$@" "${extra[@]}" \
    > "$out/$name.log" 2>&1
}
