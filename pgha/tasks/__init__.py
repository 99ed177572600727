"""@deploy functions, one per role and lifecycle step; deploys/*.py call them."""
