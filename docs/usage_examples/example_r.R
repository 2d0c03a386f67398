# P(accessible) from R, through Kipoi's Python API (reticulate).
#
#   Rscript docs/usage_examples/example_r.R [MODEL_FOLDER]    # default: this repository
#
# Run it from the repository: it uses the Python that setup.sh installed in .venv
# (set RETICULATE_PYTHON to use another). Outputs go to the model folder's output/.
# Set before reticulate starts: it then skips its project discovery (which would mistake
# this repository's pyproject.toml for a Poetry project and warn).
if (Sys.getenv("RETICULATE_PYTHON") == "") Sys.setenv(RETICULATE_PYTHON = file.path(getwd(), ".venv/bin/python"))
library(reticulate)
args <- commandArgs(trailingOnly = TRUE)
if (length(args) > 0) setwd(args[1])

kipoi <- import("kipoi")
model <- kipoi$get_model(".", source = "dir")
preds <- model$pipeline$predict(list(
  intervals_file = "example/intervals.bed",
  fasta_file = "example/hg19_chr22_1-22000000.fa.gz",
  cell_types = "E003,E116,E123"))
# reticulate 1.28 (Debian 12) does not convert numpy 2 arrays: go through a list of rows.
preds <- do.call(rbind, lapply(preds$tolist(), unlist))
colnames(preds) <- c("E003", "E116", "E123")
rownames(preds) <- read.table("example/intervals.bed", sep = "\t")$V4
print(head(preds))

dir.create("output", showWarnings = FALSE)
write.table(preds, "output/example_r.tsv", sep = "\t", quote = FALSE, col.names = NA)
