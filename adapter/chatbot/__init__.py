"""The chatbot side: RapidPro/Weni bodies in, RapidPro API calls out."""
