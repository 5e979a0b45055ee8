"""Pure metric functions: likelihoods now; sample-quality distances in later waves."""
