"""Teaching content: the Learn page's sections, glossary and quiz (``learn``)."""
