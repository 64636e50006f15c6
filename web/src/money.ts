// Prices are dollars with cents; totals are computed in whole cents so 3 x 19.99 is 59.97.

export function totalPrice(price: number, quantity: number): number {
  return (Math.round(price * 100) * quantity) / 100;
}

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });

export function formatMoney(amount: number): string {
  return usd.format(amount);
}
