"""The artifact: what it is (``manifest``, ``extras``, ``card``), writing and strict reading
(``io``), where it lives (``store``, ``destination``), whether a stored one can be used
(``health``), checking (``verify``) and the Hugging Face Hub (``hub``)."""
