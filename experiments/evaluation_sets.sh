# The six evaluation sets of the shipped model (sourced by evaluate_pretrained.sh and
# confidence.sh): Surrey faces, ICT faces and ICT whole heads, clean and with the training data's
# scanner effects; each script adds its own identities and seed.
EFFECTS="--holes 1 --fov 0.7 --view 0.3 --density 0.3"
declare -A SETS=(
    [sfm]="--source sfm"
    [ict]="--source ict"
    [ict-head]="--source ict --region head"
    [sfm-effects]="--source sfm $EFFECTS"
    [ict-effects]="--source ict $EFFECTS"
    [ict-head-effects]="--source ict --region head $EFFECTS"
)
SET_NAMES="sfm ict ict-head sfm-effects ict-effects ict-head-effects"
