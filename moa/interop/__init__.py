"""Interoperability: the symbolic model exported as SBML (:mod:`.sbml`) and run by libroadrunner (:mod:`.roadrunner`).
Both need the ``sbml`` extra and are imported only when used."""
