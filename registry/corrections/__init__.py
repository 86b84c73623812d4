"""Community corrections (社区矫正): cases, check-ins, sanctions, the daily check-in board."""
