"""The seeder: data profiles, generators that build rows through the canonical models, the COPY loader."""
