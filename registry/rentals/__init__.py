"""The rental register: properties, landlords, pledges."""
